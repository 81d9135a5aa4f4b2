# CTest bench_list: `clnorm-bench --list` exits 0 and lists every OpenCL
# platform present: PoCL always here, and Oclgrind too when the vendors
# directory test.sh sets up (OCL_ICD_VENDORS) holds its ICD.
#   cmake -DBENCH=<clnorm-bench> -P list_check.cmake
execute_process(COMMAND ${BENCH} --list RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "clnorm-bench --list exited ${rc}: ${err}")
endif()
set(want "Portable Computing Language")
if(DEFINED ENV{OCL_ICD_VENDORS} AND EXISTS "$ENV{OCL_ICD_VENDORS}/oclgrind.icd")
  list(APPEND want "Oclgrind")
endif()
foreach(p IN LISTS want)
  string(FIND "${out}" "${p}" at)
  if(at LESS 0)
    message(FATAL_ERROR "clnorm-bench --list does not list platform '${p}':\n${out}")
  endif()
endforeach()
message(STATUS "clnorm-bench --list lists: ${want}")
