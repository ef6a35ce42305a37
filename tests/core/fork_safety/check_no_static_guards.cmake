# core_no_static_guards: the core library has no function-local static with a dynamic
# initialiser.
#
# Such a static's guard (__cxa_guard_acquire) is a lock: a child forked while another
# thread of the parent is inside the initialiser finds it taken by a thread it does not
# have, and its own first call waits forever (found as a hang of
# BornWithCode.ForkWhileAnotherThreadMakesFirstAllocations: the report settings and the
# page size were such statics). process/locks.h states the rule; this test reads the
# archive's undefined symbols and names each object that calls the guard.
# Usage: cmake -DLIB=libjitalloc.a -DNM=nm -P check_no_static_guards.cmake
foreach(v LIB NM)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_no_static_guards: ${v} is not set")
  endif()
endforeach()

execute_process(COMMAND ${NM} -A -u ${LIB}
  OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_no_static_guards: ${NM} ${LIB} failed (${rc}): ${err}")
endif()
if(NOT out MATCHES "U ")
  message(FATAL_ERROR "check_no_static_guards: no undefined symbols read from ${LIB}: "
                      "not an archive nm can read?")
endif()

string(REPLACE "\n" ";" lines "${out}")
set(offenders "")
foreach(line IN LISTS lines)
  if(line MATCHES "^[^:]*:([^:]+):.* U __cxa_guard_acquire$")
    list(APPEND offenders "${CMAKE_MATCH_1}")
  endif()
endforeach()
if(offenders)
  list(REMOVE_DUPLICATES offenders)
  list(JOIN offenders ", " names)
  message(FATAL_ERROR "function-local statics with a guard (a lock a forked child can "
                      "inherit taken) in: ${names}")
endif()
message(STATUS "no static guards in ${LIB}")
