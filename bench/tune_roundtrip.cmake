# CTest bench_tune: clnorm-bench --tune writes a file the library reads.
#   cmake -DBENCH=<clnorm-bench> -DOUT=<file> -P tune_roundtrip.cmake
# 1. tune two small cases; the file starts with the header;
# 2. add an entry for the device (a variant and work-group size the rules
#    do not pick) and run the case with CLNORM_TUNING and --check: the
#    library reads the file and the tuned run is still correct;
# 3. a malformed file makes the run fail.
set(cases --op layer_norm --shape 64x1024 --op group_norm --shape 2x64x8x8 --layout nhwc --groups 8)
execute_process(COMMAND ${BENCH} --quiet --warm-cache --reps 2 --tune ${OUT} ${cases}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "--tune failed (${rc}):\n${out}\n${err}")
endif()
file(STRINGS ${OUT} lines)
list(GET lines 0 first)
if(NOT first STREQUAL "clnorm-tuning 1")
  message(FATAL_ERROR "first line of ${OUT}: '${first}'")
endif()
if(NOT out MATCHES "Tuning ([^\n]+) \\[[A-Z]+\\]:")
  message(FATAL_ERROR "no device name in the tuner's output:\n${out}")
endif()
set(dev "${CMAKE_MATCH_1}")
if(NOT out MATCHES "layer_norm 64x1024 +layer_norm rows batch 10 6 ")
  message(FATAL_ERROR "no row with the key of layer_norm 64x1024:\n${out}")
endif()
# Entries the tuner wrote (if any) are for other keys than this one, or for
# this key: drop this key's, then add ours.
file(STRINGS ${OUT} kept REGEX "^[^\t]*\t[^\t]*\t")
list(FILTER kept EXCLUDE REGEX "\tlayer_norm rows batch 10 6\t")
string(REPLACE ";" "\n" kept "${kept}")
file(WRITE ${OUT}.edited "clnorm-tuning 1\n${kept}\n${dev}\tlayer_norm rows batch 10 6\tsubgroup\t32\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E env CLNORM_TUNING=${OUT}.edited
                ${BENCH} --quiet --warm-cache --reps 2 --check --op layer_norm --shape 64x1024
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "run with the tuned file failed (${rc}):\n${out}\n${err}")
endif()
file(WRITE ${OUT}.broken "clnorm-tuning 1\n${dev}\tlayer_norm rows batch 10 6\tsubgroup\t33\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E env CLNORM_TUNING=${OUT}.broken
                ${BENCH} --quiet --warm-cache --reps 2 --op layer_norm --shape 64x1024
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "CLNORM_ERR_TUNING_FILE")
  message(FATAL_ERROR "a malformed tuning file was accepted (${rc}):\n${out}\n${err}")
endif()
