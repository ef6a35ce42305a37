# Installs the build tree into a scratch prefix (cmake --install --prefix), then builds
# and runs a consumer of the installed tree. STAGE selects the consumer:
#   shared     find_package(jitalloc): jit-examples/demo.c and a tiny C program against
#              jitalloc::jitalloc (the shared library), checked to load the installed copy;
#   static     find_package(jitalloc): the tiny C program against jitalloc::static;
#   pkgconfig  the installed jitalloc.pc: its paths lie in the prefix; tiny and the demo
#              built with a plain compiler command line from pkg-config --cflags --libs;
#   orc        find_package(jitalloc COMPONENTS orc): a consumer of jitalloc::orc, and the
#              installed jitalloc-lli running BITCODE (tests/orc).
# Variables: STAGE BUILD_DIR WORK_DIR CONSUMER_DIR DEMO_SOURCE SANITIZE C_COMPILER BITCODE
cmake_minimum_required(VERSION 3.25)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(LAST_OUTPUT "${out}" PARENT_SCOPE)
endfunction()

# Finds exactly one installed file matching a glob below the prefix.
function(find_installed var glob)
  file(GLOB_RECURSE found ${prefix}/${glob})
  if(NOT found)
    message(FATAL_ERROR "the install has no ${glob}")
  endif()
  list(GET found 0 first)
  set(${var} ${first} PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

foreach(f include/jitalloc/jitalloc.h include/jitalloc/jitalloc.hpp)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "the install has no ${f}")
  endif()
endforeach()
find_installed(static_lib "*/libjitalloc.a")
find_installed(shared_lib "*/libjitalloc.so")
find_installed(config "*/cmake/jitalloc/jitallocConfig.cmake")
find_installed(pc "*/pkgconfig/jitalloc.pc")
get_filename_component(libdir ${shared_lib} DIRECTORY)
get_filename_component(pcdir ${pc} DIRECTORY)

set(sanflags)
if(SANITIZE)
  set(sanflags -fsanitize=${SANITIZE})
endif()

if(STAGE STREQUAL "shared" OR STAGE STREQUAL "static")
  set(cbuild ${WORK_DIR}/consumer-build)
  run(${CMAKE_COMMAND} -S ${CONSUMER_DIR}/consumer -B ${cbuild}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER}
      -DDEMO_SOURCE=${DEMO_SOURCE} -DSANITIZE=${SANITIZE} -DCONSUMER_STAGE=${STAGE}
      -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  run(${CMAKE_COMMAND} --build ${cbuild} -j 2)
  if(STAGE STREQUAL "static")
    run(ldd ${cbuild}/tiny)
    if(LAST_OUTPUT MATCHES "libjitalloc")
      message(FATAL_ERROR "jitalloc::static linked the shared library:\n${LAST_OUTPUT}")
    endif()
    run(${cbuild}/tiny)
    message(STATUS "${LAST_OUTPUT}")
  else()
    foreach(exe tiny demo)
      # The shared library must be the installed one, not the build tree's.
      run(ldd ${cbuild}/${exe})
      string(FIND "${LAST_OUTPUT}" "${libdir}/libjitalloc.so" at)
      if(at EQUAL -1)
        message(FATAL_ERROR "${exe} does not load ${libdir}/libjitalloc.so:\n${LAST_OUTPUT}")
      endif()
      run(${cbuild}/${exe})
      message(STATUS "${LAST_OUTPUT}")
    endforeach()
  endif()
elseif(STAGE STREQUAL "pkgconfig")
  find_program(PKG_CONFIG pkg-config REQUIRED)
  set(ENV{PKG_CONFIG_PATH} ${pcdir})
  run(${PKG_CONFIG} --cflags --libs jitalloc)
  string(STRIP "${LAST_OUTPUT}" pkgflags)
  # Every -I / -L path must lie in the prefix the package was installed to.
  separate_arguments(pkgflags UNIX_COMMAND "${pkgflags}")
  file(REAL_PATH ${prefix}/include want_inc)
  file(REAL_PATH ${libdir} want_lib)
  set(seen_inc FALSE)
  set(seen_lib FALSE)
  foreach(flag ${pkgflags})
    if(flag MATCHES "^-([IL])(.+)$")
      file(REAL_PATH "${CMAKE_MATCH_2}" dir)
      if(CMAKE_MATCH_1 STREQUAL "I" AND dir STREQUAL want_inc)
        set(seen_inc TRUE)
      elseif(CMAKE_MATCH_1 STREQUAL "L" AND dir STREQUAL want_lib)
        set(seen_lib TRUE)
      else()
        message(FATAL_ERROR "pkg-config flag ${flag} points outside the install prefix ${prefix} (${pc})")
      endif()
    endif()
  endforeach()
  if(NOT seen_inc OR NOT seen_lib)
    message(FATAL_ERROR "pkg-config flags lack -I${want_inc} or -L${want_lib}: ${pkgflags} (${pc})")
  endif()
  run(${C_COMPILER} -Wall -Wextra -Werror ${sanflags} ${CONSUMER_DIR}/consumer/tiny.c
      ${pkgflags} -Wl,-rpath,${libdir} -o ${WORK_DIR}/tiny)
  run(${WORK_DIR}/tiny)
  message(STATUS "${LAST_OUTPUT}")
  run(${C_COMPILER} -Wall -Wextra -Werror ${sanflags} ${DEMO_SOURCE}
      ${pkgflags} -pthread -Wl,-rpath,${libdir} -o ${WORK_DIR}/demo)
  run(${WORK_DIR}/demo)
elseif(STAGE STREQUAL "orc")
  # find_package(jitalloc COMPONENTS orc) and the installed jitalloc-lli (tests/orc).
  find_installed(orc_lib "*/libjitalloc-orc.so")
  find_installed(lli "bin/jitalloc-lli")
  find_installed(orc_header "include/jitalloc/orc.hpp")
  set(cbuild ${WORK_DIR}/consumer-build)
  run(${CMAKE_COMMAND} -S ${CONSUMER_DIR}/consumer -B ${cbuild}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  run(${CMAKE_COMMAND} --build ${cbuild} -j 2)
  run(ldd ${cbuild}/orc_consumer)
  string(FIND "${LAST_OUTPUT}" "${libdir}/libjitalloc-orc.so" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "orc_consumer does not load ${libdir}/libjitalloc-orc.so:\n${LAST_OUTPUT}")
  endif()
  run(${cbuild}/orc_consumer)
  message(STATUS "${LAST_OUTPUT}")
  run(${lli} ${BITCODE})
  message(STATUS "installed jitalloc-lli ran ${BITCODE}")
else()
  message(FATAL_ERROR "unknown STAGE '${STAGE}'")
endif()
message(STATUS "install test (${STAGE}) ok")
