# Installs the build tree into a scratch prefix (cmake --install --prefix), then builds
# and runs a consumer of the installed tree. STAGE selects the consumer:
#   shared     find_package(jitalloc): jit-examples/demo.c and a tiny C program against
#              jitalloc::jitalloc (the shared library), checked to load the installed copy;
#   static     find_package(jitalloc): the tiny C program against jitalloc::static;
#   pkgconfig  the installed jitalloc.pc, jitalloc-static.pc and (with Capstone)
#              jitalloc-inspect.pc: their paths lie in the prefix; tiny and the demo built
#              with a plain compiler command line from pkg-config --cflags --libs, tiny
#              from jitalloc-static too (no libjitalloc.so loaded), the inspect consumer;
#   inspect    find_package(jitalloc COMPONENTS inspect): a consumer of jitalloc::inspect;
#   tools      the installed jitalloc-dump starts without LD_LIBRARY_PATH (RUNPATH
#              relative to the binary), also after the prefix is moved elsewhere;
#   orc        find_package(jitalloc COMPONENTS orc): a consumer of jitalloc::orc, and the
#              installed jitalloc-lli running BITCODE (tests/orc), also from a moved prefix.
# Variables: STAGE BUILD_DIR WORK_DIR CONSUMER_DIR DEMO_SOURCE SANITIZE C_COMPILER BITCODE
cmake_minimum_required(VERSION 3.25)

include(${CMAKE_CURRENT_LIST_DIR}/script_helpers.cmake)

# The installed binary's RUNPATH must be relative to it ($ORIGIN), never a build path.
function(check_relative_runpath exe)
  run(readelf -d ${exe})
  if(NOT LAST_OUTPUT MATCHES "(RUNPATH|RPATH)[^\n]*\\[\\$ORIGIN/")
    message(FATAL_ERROR "${exe} has no RUNPATH relative to $ORIGIN:\n${LAST_OUTPUT}")
  endif()
  if(LAST_OUTPUT MATCHES "(RUNPATH|RPATH)[^\n]*${BUILD_DIR}")
    message(FATAL_ERROR "${exe} has a RUNPATH into the build tree ${BUILD_DIR}:\n${LAST_OUTPUT}")
  endif()
endfunction()

# Moves the installed tree elsewhere: what is installed must not depend on where.
function(move_prefix)
  set(moved ${WORK_DIR}/moved-prefix)
  file(RENAME ${prefix} ${moved})
  set(prefix ${moved} PARENT_SCOPE)
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
    expect_no_shared_jitalloc(${cbuild}/tiny)
    run(${cbuild}/tiny)
    message(STATUS "${LAST_OUTPUT}")
  else()
    foreach(exe tiny demo)
      # The shared library must be the installed one, not the build tree's.
      expect_loads(${cbuild}/${exe} libjitalloc.so ${libdir})
      run(${cbuild}/${exe})
      message(STATUS "${LAST_OUTPUT}")
    endforeach()
  endif()
elseif(STAGE STREQUAL "pkgconfig")
  find_program(PKG_CONFIG pkg-config REQUIRED)
  set(ENV{PKG_CONFIG_PATH} ${pcdir})
  file(REAL_PATH ${prefix}/include want_inc)
  file(REAL_PATH ${libdir} want_lib)
  # pkg_flags(VAR MODULE): pkg-config --cflags --libs MODULE; every -I / -L path and every
  # library named by path lies in the prefix the package was installed to.
  function(pkg_flags var module)
    run(${PKG_CONFIG} --cflags --libs ${module})
    string(STRIP "${LAST_OUTPUT}" flags)
    separate_arguments(flags UNIX_COMMAND "${flags}")
    set(seen_inc FALSE)
    set(seen_lib FALSE)
    foreach(flag ${flags})
      # One MATCHES per if(): a failed match clears CMAKE_MATCH_n.
      set(kind "")
      if(flag MATCHES "^-([IL])(.+)$")
        set(kind ${CMAKE_MATCH_1})
        set(value ${CMAKE_MATCH_2})
      elseif(flag MATCHES "^/.+$")
        set(kind "path")
        set(value ${flag})
      endif()
      if(kind)
        file(REAL_PATH "${value}" path)
        get_filename_component(dir ${path} DIRECTORY)
        if(kind STREQUAL "I" AND path STREQUAL want_inc)
          set(seen_inc TRUE)
        elseif((kind STREQUAL "L" AND path STREQUAL want_lib) OR
               (kind STREQUAL "path" AND dir STREQUAL want_lib))
          set(seen_lib TRUE)
        else()
          message(FATAL_ERROR "pkg-config ${module}: ${flag} points outside the install prefix ${prefix}")
        endif()
      endif()
    endforeach()
    if(NOT seen_inc OR NOT seen_lib)
      message(FATAL_ERROR "pkg-config ${module} lacks -I${want_inc} or a library in ${want_lib}: ${flags}")
    endif()
    set(${var} ${flags} PARENT_SCOPE)
  endfunction()

  pkg_flags(pkgflags jitalloc)
  run(${C_COMPILER} -Wall -Wextra -Werror ${sanflags} ${CONSUMER_DIR}/consumer/tiny.c
      ${pkgflags} -Wl,-rpath,${libdir} -o ${WORK_DIR}/tiny)
  run(${WORK_DIR}/tiny)
  message(STATUS "${LAST_OUTPUT}")
  run(${C_COMPILER} -Wall -Wextra -Werror ${sanflags} ${DEMO_SOURCE}
      ${pkgflags} -pthread -Wl,-rpath,${libdir} -o ${WORK_DIR}/demo)
  run(${WORK_DIR}/demo)

  # jitalloc-static: the archive, nothing of the shared library.
  pkg_flags(staticflags jitalloc-static)
  if(NOT staticflags MATCHES "libjitalloc\\.a")
    message(FATAL_ERROR "pkg-config jitalloc-static does not name libjitalloc.a: ${staticflags}")
  endif()
  run(${C_COMPILER} -Wall -Wextra -Werror ${sanflags} ${CONSUMER_DIR}/consumer/tiny.c
      ${staticflags} -o ${WORK_DIR}/tiny-static)
  expect_no_shared_jitalloc(${WORK_DIR}/tiny-static)
  run(${WORK_DIR}/tiny-static)
  message(STATUS "static: ${LAST_OUTPUT}")

  # jitalloc-inspect, where Capstone was found at build time.
  if(EXISTS ${pcdir}/jitalloc-inspect.pc)
    pkg_flags(inspectflags jitalloc-inspect)
    run(${C_COMPILER} -Wall -Wextra -Werror ${sanflags} ${CONSUMER_DIR}/consumer/inspect_consumer.c
        ${inspectflags} -Wl,-rpath,${libdir} -o ${WORK_DIR}/inspect_consumer)
    run(${WORK_DIR}/inspect_consumer)
    message(STATUS "${LAST_OUTPUT}")
  elseif(EXISTS ${libdir}/libjitalloc-inspect.so)
    message(FATAL_ERROR "libjitalloc-inspect is installed without jitalloc-inspect.pc")
  endif()
elseif(STAGE STREQUAL "inspect")
  find_installed(inspect_lib "*/libjitalloc-inspect.so")
  find_installed(inspect_targets "*/cmake/jitalloc/jitallocInspectTargets.cmake")
  set(cbuild ${WORK_DIR}/consumer-build)
  run(${CMAKE_COMMAND} -S ${CONSUMER_DIR}/consumer -B ${cbuild}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER}
      -DSANITIZE=${SANITIZE} -DCONSUMER_STAGE=inspect -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  run(${CMAKE_COMMAND} --build ${cbuild} -j 2)
  expect_loads(${cbuild}/inspect_consumer libjitalloc-inspect.so ${libdir})
  run(${cbuild}/inspect_consumer)
  message(STATUS "${LAST_OUTPUT}")
elseif(STAGE STREQUAL "tools")
  find_installed(dump "bin/jitalloc-dump")
  file(RELATIVE_PATH libsub ${prefix} ${libdir})
  check_relative_runpath(${dump})
  foreach(where installed moved)
    if(where STREQUAL "moved")
      move_prefix()
      set(dump ${prefix}/bin/jitalloc-dump)
    endif()
    run_installed(${dump} --help)
    run_installed(${dump} --self-demo)
    foreach(lib libjitalloc.so libjitalloc-inspect.so)
      expect_loads(${dump} ${lib} ${prefix}/${libsub})
    endforeach()
    message(STATUS "${where} jitalloc-dump starts and finds its libraries in ${prefix}")
  endforeach()
elseif(STAGE STREQUAL "orc")
  # find_package(jitalloc COMPONENTS orc) and the installed jitalloc-lli (tests/orc).
  find_installed(orc_lib "*/libjitalloc-orc.so")
  find_installed(lli "bin/jitalloc-lli")
  find_installed(orc_header "include/jitalloc/orc.hpp")
  set(cbuild ${WORK_DIR}/consumer-build)
  run(${CMAKE_COMMAND} -S ${CONSUMER_DIR}/consumer -B ${cbuild}
      -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  run(${CMAKE_COMMAND} --build ${cbuild} -j 2)
  expect_loads(${cbuild}/orc_consumer libjitalloc-orc.so ${libdir})
  run(${cbuild}/orc_consumer)
  message(STATUS "${LAST_OUTPUT}")
  check_relative_runpath(${lli})
  run_installed(${lli} ${BITCODE})
  message(STATUS "installed jitalloc-lli ran ${BITCODE}")
  move_prefix()
  run_installed(${prefix}/bin/jitalloc-lli ${BITCODE})
  message(STATUS "jitalloc-lli ran ${BITCODE} from the moved prefix ${prefix}")
else()
  message(FATAL_ERROR "unknown STAGE '${STAGE}'")
endif()
message(STATUS "install test (${STAGE}) ok")
