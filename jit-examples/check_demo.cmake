# Runs the demo (jit-examples/demo.c) and checks that it says what it does: each step,
# the two threads, the fork, every bad input with its errno, and statistics taken while
# the functions are live (a size-class row with objects in use). Variables: DEMO, or
# DEMO_OUTPUT: the stdout of a run elsewhere (the arm64 guest, tests/arm64/run.sh, which
# checks exit status and stderr itself).
cmake_minimum_required(VERSION 3.25)
if(DEFINED DEMO_OUTPUT)
  file(READ "${DEMO_OUTPUT}" out)
  set(rc 0)
  set(err "")
else()
  execute_process(COMMAND ${DEMO} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the demo failed (${rc}):\n${out}\n${err}")
endif()
set(phrases
  "loaded 20000 functions"
  "called each once"
  "patched the imm32 of every function"
  "thread 0: 100000 calls, 0 wrong"
  "thread 1: 100000 calls, 0 wrong"
  "fork: child "
  "(exit status 0)"
  "jit_free(NULL)                             fails, errno EINVAL (Invalid argument)"
  "jit_free(interior pointer)"
  "jit_update past the end of f"
  "jit_alloc(code, SIZE_MAX)"
  "jit_free twice (double free)               fails, errno EINVAL"
  "statistics with 20000 live functions"
  "live 20000"
  "freed all 20000 functions"
  "now 0 live"
  "demo: all checks passed")
foreach(p ${phrases})
  string(FIND "${out}" "${p}" at)
  if(at EQUAL -1)
    message(SEND_ERROR "the demo's output lacks \"${p}\"")
  endif()
endforeach()
# The statistics table lists size classes with objects in use (class pages obj/slab slabs
# in-use free): at least one row with a non-zero in-use column.
if(NOT out MATCHES "\n +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[1-9][0-9]* +[0-9]+\n")
  message(SEND_ERROR "the demo's statistics show no size class in use:\n${out}")
endif()
if(NOT err STREQUAL "")
  message(SEND_ERROR "the demo wrote to stderr:\n${err}")
endif()
