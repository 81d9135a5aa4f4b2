# Runs PROGRAM (tests/oclgrind_kernels.c) under Oclgrind's checks, once per
# device class, and fails on any Oclgrind report, on a non-zero exit status
# of PROGRAM or Oclgrind, or when a run prints no summary line.
#
#   cmake -DOCLGRIND=/usr/bin/oclgrind -DPROGRAM=path [-DWORKDIR=dir] [-DRUNS=gpu|cpu] -P oclgrind_check.cmake
#
# RUNS picks one of the two runs below (default: both, in turn). CTest
# registers each as a test of its own, so that a parallel ctest runs them
# side by side: Oclgrind 21.10 simulates on one thread.
#
# How Oclgrind reports: Oclgrind 21.10 has no option that makes its exit
# status reflect what it found. It prints each report (out-of-bounds
# access, data race, barrier divergence, uninitialized value, an API error
# under --check-api) to stderr as an unindented first line followed by
# tab-indented details, and lets the program's status through. PROGRAM
# prints its own lines to stdout and writes to stderr only when it cannot
# start, so every unindented non-empty stderr line counts as one report.
# (Not --log FILE: every OpenCL context a process creates opens FILE anew
# and truncates it, losing the reports of earlier contexts.)
#
# The two runs:
#   gpu  PROGRAM's GPU-rule cases under --data-races --uninitialized
#        --check-api, built with -cl-opt-disable: the optimizer turns
#        float4 horizontal sums into shufflevector instructions with undef
#        mask elements, on which Oclgrind 21.10's Uninitialized plugin
#        crashes (it reads the shadow of element -1; segmentation fault).
#   cpu  PROGRAM's CPU-rule cases under --data-races --check-api, without
#        --uninitialized: the CPU kernels build float16 vectors from two
#        float8 loads, which clang compiles to such shuffles at every
#        optimization level.
#
# Oclgrind's wrapper preloads its own OpenCL runtime, so the ICD loader and
# OCL_ICD_VENDORS play no part; CLNORM_DEVICE and the other CLNORM_*
# settings are cleared so that PROGRAM gets the default device (it checks
# that this is Oclgrind's) and runs its whole case list as written.
foreach(v OCLGRIND PROGRAM)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "oclgrind_check.cmake: -D${v}=... is required")
  endif()
endforeach()
foreach(e OCL_ICD_VENDORS OCL_ICD_FILENAMES CLNORM_DEVICE CLNORM_VARIANT CLNORM_TUNING CLNORM_STREAM
          CLNORM_DEVICE_CLASS CLNORM_TEST_VARIANTS OCLGRIND_BUILD_OPTIONS OCLGRIND_LOG OCLGRIND_MAX_ERRORS)
  unset(ENV{${e}})
endforeach()
if(NOT DEFINED WORKDIR)
  set(WORKDIR "${CMAKE_CURRENT_BINARY_DIR}")
endif()

set(run_names gpu cpu)
if(DEFINED RUNS)
  set(run_names ${RUNS})
endif()
set(run_gpu_opts --data-races --uninitialized --check-api --build-options -cl-opt-disable)
set(run_cpu_opts --data-races --check-api)

set(failures "")
foreach(run IN LISTS run_names)
  string(TIMESTAMP t0 "%s")
  execute_process(
    COMMAND "${OCLGRIND}" ${run_${run}_opts} "${PROGRAM}" ${run}
    WORKING_DIRECTORY "${WORKDIR}"
    OUTPUT_VARIABLE out
    ERROR_VARIABLE err
    RESULT_VARIABLE rc)
  string(TIMESTAMP t1 "%s")
  math(EXPR secs "${t1} - ${t0}")
  message("${out}")
  # Report count: unindented non-empty lines (list separators and brackets
  # taken out first, so that each match stays one list element).
  string(REGEX REPLACE "[][;]" "_" plain "${err}")
  string(REGEX MATCHALL "(^|\n)[^ \t\r\n][^\n]*" first_lines "${plain}")
  list(LENGTH first_lines reports)
  if(reports GREATER 0)
    file(WRITE "${WORKDIR}/oclgrind_kernels_${run}.log" "${err}")
    string(LENGTH "${err}" len)
    if(len GREATER 20000)
      string(SUBSTRING "${err}" 0 20000 err)
      set(err "${err}\n... (cut; all of it is in ${WORKDIR}/oclgrind_kernels_${run}.log)")
    endif()
    message("${err}")
    list(APPEND failures "${run}: ${reports} Oclgrind report(s)")
  endif()
  if(NOT rc EQUAL 0)
    list(APPEND failures "${run}: exit status ${rc}")
  elseif(NOT out MATCHES "# oclgrind_kernels: [1-9][0-9]* runs, 0 failed")
    list(APPEND failures "${run}: no summary line with 0 failures")
  endif()
  message(STATUS "oclgrind ${run_${run}_opts} ${PROGRAM} ${run}: ${reports} report(s), exit status ${rc}, ${secs} s")
endforeach()
if(failures)
  string(REPLACE ";" "\n  " failures "${failures}")
  message(FATAL_ERROR "oclgrind_kernels failed:\n  ${failures}")
endif()
