# Installs the build tree into a scratch prefix, then builds and runs consumers of the
# installed tree: a CMake project using find_package(jitalloc) (the demo against the
# shared library, a tiny program against the static one) and a pkg-config build.
#   -DBUILD_DIR -DWORK_DIR -DCONSUMER_DIR -DDEMO_SOURCE -DSANITIZE -DC_COMPILER
cmake_minimum_required(VERSION 3.25)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(LAST_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# What the install must contain.
file(GLOB_RECURSE libdirs LIST_DIRECTORIES true ${prefix}/*/cmake/jitalloc)
foreach(f include/jitalloc/jitalloc.h include/jitalloc/jitalloc.hpp)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "missing ${f}")
  endif()
endforeach()
file(GLOB_RECURSE pcs ${prefix}/*/pkgconfig/jitalloc.pc)
file(GLOB_RECURSE statics ${prefix}/*/libjitalloc.a)
file(GLOB_RECURSE shareds ${prefix}/*/libjitalloc.so)
file(GLOB_RECURSE configs ${prefix}/*/cmake/jitalloc/jitallocConfig.cmake)
foreach(v pcs statics shareds configs)
  if(NOT ${v})
    message(FATAL_ERROR "install has no ${v}")
  endif()
endforeach()
list(GET pcs 0 pc)
get_filename_component(pcdir ${pc} DIRECTORY)
list(GET shareds 0 shared)
get_filename_component(libdir ${shared} DIRECTORY)

# 1. find_package consumer.
set(cbuild ${WORK_DIR}/consumer-build)
run(${CMAKE_COMMAND} -S ${CONSUMER_DIR}/consumer -B ${cbuild}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER}
    -DDEMO_SOURCE=${DEMO_SOURCE} -DSANITIZE=${SANITIZE} -DCMAKE_BUILD_TYPE=RelWithDebInfo)
run(${CMAKE_COMMAND} --build ${cbuild} -j 2)
run(${cbuild}/tiny_static)
message(STATUS "${LAST_OUTPUT}")
# The shared library must be the installed one, not the build tree's.
run(ldd ${cbuild}/demo_shared)
string(FIND "${LAST_OUTPUT}" "${libdir}/libjitalloc.so" found)
if(found EQUAL -1)
  message(FATAL_ERROR "demo_shared does not use the installed library:\n${LAST_OUTPUT}")
endif()
run(${cbuild}/demo_shared)
message(STATUS "${LAST_OUTPUT}")

# 2. pkg-config consumer: plain compiler command line from the .pc file.
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
run(${PKG_CONFIG} --cflags --libs jitalloc)
string(STRIP "${LAST_OUTPUT}" pkgflags)
separate_arguments(pkgflags UNIX_COMMAND "${pkgflags}")
set(sanflags)
if(SANITIZE)
  set(sanflags -fsanitize=${SANITIZE})
endif()
run(${C_COMPILER} -Wall -Wextra -Werror ${sanflags} ${CONSUMER_DIR}/consumer/tiny.c
    ${pkgflags} -Wl,-rpath,${libdir} -o ${WORK_DIR}/tiny_pkgconfig)
run(${WORK_DIR}/tiny_pkgconfig)
message(STATUS "${LAST_OUTPUT}")
run(${C_COMPILER} -Wall -Wextra -Werror ${sanflags} ${DEMO_SOURCE}
    ${pkgflags} -pthread -Wl,-rpath,${libdir} -o ${WORK_DIR}/demo_pkgconfig)
run(${WORK_DIR}/demo_pkgconfig)
message(STATUS "install test ok")
