# CTest bench_outputs: what clnorm-bench promises its users (issue 4).
#   cmake -DBENCH=<clnorm-bench> -DOUT=<dir> [-DTIMES=<libclnorm_kernel_times.so>] -P outputs_check.cmake
# 1. --json: one object per case and direction (the backward row after the
#    forward one, issue 16) with the documented fields, and numbers that
#    agree with each other (effective bytes of the documented formula,
#    GB/s = bytes / median, ratio = GB/s / copy GB/s);
# 2. --csv: a header with the same fields and one row per case and
#    direction; in both, copy_method names one of the bench's copy methods
#    (issue 14); --direction forward gives the forward rows alone;
# 3. run order, seen through kernel-times' launch trace, forward and
#    backward: a timed run starts from scrubbed caches by default, and with
#    --warm-cache from the case's own data, never right after the reference
#    copy (which evicts it).
cmake_minimum_required(VERSION 3.16)
set(cases --op layer_norm --shape 64x1024 --op group_norm --shape 2x64x8x8 --layout nhwc --groups 8)
# Forward, LayerNorm M x D: 4 (2 M D + 2 D + 2 M); GroupNorm: 4 (2 N C S + 2 C + 2 N G).
# Backward (x, dy read, dx written; scale, mean, rstd read; dscale, dbias written):
# LayerNorm 4 (3 M D + 3 D + 2 M); GroupNorm 4 (3 N C S + 3 C + 2 N G).
set(want_bytes 532992 799232 66176 99200)
set(want_shape "[64,1024]" "[64,1024]" "[2,64,8,8]" "[2,64,8,8]")
set(want_op layer_norm layer_norm group_norm group_norm)
set(want_dir forward backward forward backward)
set(want_layout rows rows nhwc nhwc)
# clnorm-bench's copy_methods[]: the yardstick is the fastest of these.
set(copy_methods copy_buffer copy4 copy4_stride copy1 copy8 copy16)

# The bench's stdout as a list of lines, of which there must be n_want.
function(bench_lines out_var n_want)
  execute_process(COMMAND ${BENCH} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "clnorm-bench ${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  string(STRIP "${out}" out)
  string(REPLACE "\n" ";" lines "${out}")
  list(LENGTH lines n)
  if(NOT n EQUAL n_want)
    message(FATAL_ERROR "clnorm-bench ${ARGN}: ${n} lines, want ${n_want}:\n${out}")
  endif()
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()

function(json_number line key out_var)
  if(NOT line MATCHES "\"${key}\":(-?[0-9.eE+-]+)[,}]")
    message(FATAL_ERROR "no number \"${key}\" in: ${line}")
  endif()
  set(${out_var} ${CMAKE_MATCH_1} PARENT_SCOPE)
endfunction()

# 1. JSON
bench_lines(lines 4 --quiet --warm-cache --reps 3 --json ${cases})
foreach(i RANGE 3)
  list(GET lines ${i} line)
  list(GET want_op ${i} op)
  list(GET want_dir ${i} dir)
  list(GET want_layout ${i} layout)
  list(GET want_shape ${i} shape)
  list(GET want_bytes ${i} bytes)
  if(NOT line MATCHES "^{\"device\":\"[^\"]+\"")
    message(FATAL_ERROR "--json: no device first: ${line}")
  endif()
  string(REPLACE "[" "\\[" shape_re "${shape}")
  string(REPLACE "]" "\\]" shape_re "${shape_re}")
  foreach(field "\"op\":\"${op}\"" "\"direction\":\"${dir}\"" "\"layout\":\"${layout}\"" "\"shape\":${shape_re}" "\"bytes\":${bytes},")
    if(NOT line MATCHES "${field}")
      message(FATAL_ERROR "--json: want ${field} in: ${line}")
    endif()
  endforeach()
  if(dir STREQUAL backward AND NOT line MATCHES "\"grads\":\\[\"dx\",\"dscale\",\"dbias\"\\]")
    message(FATAL_ERROR "--json: a backward row of an affine case without grads dx, dscale, dbias: ${line}")
  endif()
  if(NOT line MATCHES "\"copy_method\":\"([^\"]*)\"" OR NOT CMAKE_MATCH_1 IN_LIST copy_methods)
    message(FATAL_ERROR "--json: copy_method is not one of ${copy_methods}: ${line}")
  endif()
  json_number("${line}" median_ms ms)
  json_number("${line}" gbps gbps)
  json_number("${line}" copy_gbps copy)
  json_number("${line}" ratio ratio)
  # Checked with a tolerance for the printed rounding (gbps has 3 decimals,
  # ratio 4), in a subprocess: CMake's math() has integers only.
  execute_process(COMMAND awk -v ms=${ms} -v g=${gbps} -v c=${copy} -v r=${ratio} -v b=${bytes}
                  "BEGIN { e1 = b / (ms * 1e6) - g; e2 = g / c - r;
                           if (ms <= 0 || c <= 0 || (e1 < 0 ? -e1 : e1) > 0.002 * g + 0.001 ||
                               (e2 < 0 ? -e2 : e2) > 0.002 * r + 0.0001) exit 1 }"
                  RESULT_VARIABLE bad)
  if(NOT bad EQUAL 0)
    message(FATAL_ERROR "--json numbers disagree (bytes ${bytes}, ms ${ms}, GB/s ${gbps}, copy ${copy}, ratio ${ratio}): ${line}")
  endif()
endforeach()

# 2. CSV
bench_lines(lines 5 --quiet --warm-cache --reps 3 --csv ${cases}) # a header and 2 cases x 2 directions
list(GET lines 0 header)
foreach(col device op direction layout shape median_ms gbps copy_gbps ratio copy_method)
  if(NOT ",${header}," MATCHES ",${col},")
    message(FATAL_ERROR "--csv header lacks ${col}: ${header}")
  endif()
endforeach()
if(NOT header MATCHES ",copy_method$")
  message(FATAL_ERROR "--csv: copy_method is not the last column: ${header}")
endif()
foreach(i 1 2 3 4)
  list(GET lines ${i} row)
  if(NOT row MATCHES ",([^,]*)$" OR NOT CMAKE_MATCH_1 IN_LIST copy_methods)
    message(FATAL_ERROR "--csv: the last field is not a copy method (${copy_methods}): ${row}")
  endif()
  math(EXPR k "${i} - 1")
  list(GET want_dir ${k} dir)
  list(GET want_op ${k} op)
  if(NOT row MATCHES ",${op},${dir},")
    message(FATAL_ERROR "--csv: row ${i} is not ${op} ${dir}: ${row}")
  endif()
endforeach()
bench_lines(lines 3 --quiet --warm-cache --reps 3 --csv --direction forward ${cases}) # a header and 2 cases
foreach(i 1 2)
  list(GET lines ${i} row)
  if(NOT row MATCHES ",forward,")
    message(FATAL_ERROR "--csv --direction forward: a row that is not forward: ${row}")
  endif()
endforeach()

# 3. Run order (kernel-times is Linux-only)
if(NOT TIMES)
  return()
endif()
# clEnqueueCopyBuffer, a copy method, launches no kernel, so kernel-times
# cannot see it: these runs set the copy4 kernel as the yardstick
# (--copy-method), and the calibration's kernels are listed only in case.
set(bench_kernels stamp copy4_stream scrub4 ${copy_methods})
foreach(mode cold warm cold-backward warm-backward)
  set(extra --direction forward)
  if(mode MATCHES backward)
    set(extra --direction backward)
  endif()
  set(want_before scrub4)
  if(mode MATCHES "^warm")
    list(APPEND extra --warm-cache)
    set(want_before case)
  endif()
  set(trace ${OUT}/trace-${mode}.txt)
  file(REMOVE ${trace})
  execute_process(COMMAND ${CMAKE_COMMAND} -E env LD_PRELOAD=${TIMES} KERNEL_TIMES_TRACE=${trace}
                  ${BENCH} --quiet --no-gate --warmup 1 --reps 4 --copy-method copy4 ${extra} --op layer_norm --shape 64x1024
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "traced run (${mode}) failed (${rc}):\n${out}\n${err}")
  endif()
  file(STRINGS ${trace} seq)
  list(LENGTH seq len)
  math(EXPR last "${len} - 2")
  set(timed 0)
  foreach(i RANGE 1 ${last})
    list(GET seq ${i} k)
    math(EXPR j "${i} + 1")
    list(GET seq ${j} next)
    if(NOT k STREQUAL "stamp" OR next IN_LIST bench_kernels)
      continue()
    endif()
    # A timed run of the case: the stamp, then the case's first kernel.
    math(EXPR timed "${timed} + 1")
    if(timed EQUAL 1)
      continue() # the warm-up run, which follows the copy measurement
    endif()
    math(EXPR p "${i} - 1")
    list(GET seq ${p} before)
    set(kind ${before})
    if(NOT before IN_LIST bench_kernels)
      set(kind case)
    endif()
    if(NOT kind STREQUAL want_before)
      message(FATAL_ERROR "${mode} run ${timed} started after '${before}', not ${want_before} (trace ${trace})")
    endif()
  endforeach()
  if(NOT timed EQUAL 5)
    message(FATAL_ERROR "${mode}: ${timed} timed runs of the case in ${trace}, want 1 warm-up + 4")
  endif()
endforeach()
