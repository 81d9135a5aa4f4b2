# Install check, run by CTest as `install_consumer` (cmake -P this file):
# installs the build tree into a fresh prefix, then builds examples/embed.c
# against that prefix the two ways a user would, and runs both programs:
#   1. pkg-config: cc embed.c $(pkg-config --cflags --libs clnorm) -lm,
#      with PKG_CONFIG_PATH=<prefix>/<libdir>/pkgconfig;
#   2. CMake: a generated project doing find_package(clnorm REQUIRED) with
#      CMAKE_PREFIX_PATH=<prefix>, linking clnorm::clnorm.
# Both must also resolve to the new prefix (not to the configured
# CMAKE_INSTALL_PREFIX or a system copy), so a .pc or config file that points
# elsewhere fails here even if that elsewhere happens to exist.
#
# Variables (-D): BUILD_DIR (the configured and built tree), SOURCE_DIR,
# WORK_DIR (scratch; the prefix is WORK_DIR/prefix, wiped first), LIBDIR
# (CMAKE_INSTALL_LIBDIR), C_COMPILER, GENERATOR.
cmake_minimum_required(VERSION 3.16)
foreach(v BUILD_DIR SOURCE_DIR WORK_DIR LIBDIR C_COMPILER GENERATOR)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "install_consumer: -D${v}=... is required")
  endif()
endforeach()

set(prefix "${WORK_DIR}/prefix")
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
if(IS_ABSOLUTE "${LIBDIR}")
  message(FATAL_ERROR "install_consumer: CMAKE_INSTALL_LIBDIR=${LIBDIR} is absolute; "
                      "an install with --prefix cannot move it")
endif()
set(libdir "${prefix}/${LIBDIR}")

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${what} failed (${rc}):\n  ${ARGN}\n${out}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()

# 0. Install.
run("install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")
message(STATUS "installed into ${prefix}")

# 1. pkg-config and the C compiler.
find_program(PKG_CONFIG NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "install_consumer: pkg-config not found")
endif()
set(ENV{PKG_CONFIG_PATH} "${libdir}/pkgconfig")
run("pkg-config clnorm" "${PKG_CONFIG}" --cflags --libs clnorm)
string(STRIP "${run_out}" pc_flags)
message(STATUS "pkg-config --cflags --libs clnorm: ${pc_flags}")
foreach(var includedir libdir)
  run("pkg-config --variable=${var}" "${PKG_CONFIG}" --variable=${var} clnorm)
  string(STRIP "${run_out}" got)
  if(var STREQUAL includedir)
    set(want "${prefix}/include")
  else()
    set(want "${libdir}")
  endif()
  get_filename_component(got_real "${got}" REALPATH)
  get_filename_component(want_real "${want}" REALPATH)
  if(NOT got_real STREQUAL want_real)
    message(FATAL_ERROR "install_consumer: clnorm.pc's ${var} is ${got}, not the install prefix's ${want}")
  endif()
endforeach()
separate_arguments(pc_list UNIX_COMMAND "${pc_flags}")
run("build with pkg-config" "${C_COMPILER}" "${SOURCE_DIR}/examples/embed.c" ${pc_list} -lm
    -o "${WORK_DIR}/embed_pkgconfig")

# 2. find_package(clnorm) from a generated project.
set(proj "${WORK_DIR}/cmake_consumer")
file(MAKE_DIRECTORY "${proj}")
file(WRITE "${proj}/CMakeLists.txt" "cmake_minimum_required(VERSION 3.16)
project(clnorm_consumer LANGUAGES C)
find_package(clnorm REQUIRED)
get_filename_component(found \"\${clnorm_DIR}\" REALPATH)
get_filename_component(want \"${prefix}\" REALPATH)
string(FIND \"\${found}\" \"\${want}/\" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR \"clnorm_DIR is \${clnorm_DIR}, outside the install prefix ${prefix}\")
endif()
add_executable(embed_cmake \"${SOURCE_DIR}/examples/embed.c\")
target_link_libraries(embed_cmake PRIVATE clnorm::clnorm m)
")
run("configure the find_package consumer" "${CMAKE_COMMAND}" -S "${proj}" -B "${proj}/build" -G "${GENERATOR}"
    "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release)
run("build the find_package consumer" "${CMAKE_COMMAND}" --build "${proj}/build")

# 3. Run both against the installed library.
set(ENV{LD_LIBRARY_PATH} "${libdir}")
foreach(exe "${WORK_DIR}/embed_pkgconfig" "${proj}/build/embed_cmake")
  run("running ${exe}" "${exe}")
  string(STRIP "${run_out}" out)
  message(STATUS "${exe}: ${out}")
endforeach()
