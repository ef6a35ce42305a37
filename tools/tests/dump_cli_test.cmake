# jitalloc-dump's command line: --help, usage errors, and what it says about names that
# match nothing and about malformed dump files. Each case: exit status and a phrase of
# the message a person needs ("what was not found", "what is wrong with the file").
# Variables: DUMP (the jitalloc-dump binary), WORK_DIR.
cmake_minimum_required(VERSION 3.25)

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(failures 0)

# expect(NAME RC STREAM PHRASE ARGS...): runs jitalloc-dump ARGS, checks its exit status
# and that STREAM (stdout|stderr) contains PHRASE.
function(expect name want_rc stream phrase)
  execute_process(COMMAND ${DUMP} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(stream STREQUAL "stdout")
    set(text "${out}")
  else()
    set(text "${err}")
  endif()
  string(FIND "${text}" "${phrase}" at)
  if(NOT rc STREQUAL "${want_rc}" OR at EQUAL -1)
    message(SEND_ERROR "${name}: want exit ${want_rc} and \"${phrase}\" on ${stream}; got exit ${rc}\n"
                       "stdout:\n${out}\nstderr:\n${err}")
  else()
    message(STATUS "ok: ${name}")
  endif()
endfunction()

# A dump as jit_dump writes it (format version 1, jit-examples/README.md).
set(header "jitalloc-dump 1 pid 42\n")
set(arena "arena 55d0 writer proc_mem flags 0x0 strict_wx 1 sync_core 1 name test\n")
set(body "order 0 free 1 cached 1 released 0\nchunk 7f0000000000 size 2097152 kind small free_pages 511\n")
set(alloc "alloc 7f0000000000 usable 16 requested 6 kind slab name answer\ncode 7f0000000000 b82a000000c3\n")
set(tail "end-arena\nend\n")
file(WRITE ${WORK_DIR}/good.dump "${header}${arena}${body}${alloc}${tail}")

expect(help 0 stdout "usage: jitalloc-dump" --help)
expect(help_short 0 stdout "usage: jitalloc-dump" -h)
expect(no_file 2 stderr "no dump file given")
expect(unknown_option 2 stderr "unknown option --bogus" --bogus)
expect(disasm_without_spec 2 stderr "--disasm needs" --disasm)
expect(good_dump 0 stdout "allocations (1)" ${WORK_DIR}/good.dump)
expect(disasm_by_name 0 stdout "mov eax, 0x2a" --disasm answer ${WORK_DIR}/good.dump)
expect(disasm_by_address 0 stdout "mov eax, 0x2a" --disasm 0x7f0000000000 ${WORK_DIR}/good.dump)
expect(unknown_name 1 stderr "no allocation named or starting at \"nosuch\" (the dump has 1 allocation(s), 1 of them named"
       --disasm nosuch ${WORK_DIR}/good.dump)
expect(missing_file 1 stderr "cannot open dump file ${WORK_DIR}/absent.dump: No such file or directory"
       ${WORK_DIR}/absent.dump)

# Malformed files: each says what is wrong, and where.
function(malformed name content phrase)
  file(WRITE ${WORK_DIR}/${name}.dump "${content}")
  expect(malformed_${name} 1 stderr "${WORK_DIR}/${name}.dump is not a valid jitalloc dump: ${phrase}"
         ${WORK_DIR}/${name}.dump)
endfunction()
malformed(empty "" "empty file")
malformed(not_a_dump "hello world\n" "line 1: not a jitalloc dump")
malformed(version "jitalloc-dump 2 pid 1\n${arena}${tail}" "line 1: dump format version 2, this reader knows version 1")
malformed(truncated "${header}${arena}${body}" "truncated after line 4: no final \"end\" line")
malformed(orphan "${header}${alloc}${tail}" "line 2: \"alloc\" before the first \"arena\" line")
malformed(bad_code "${header}${arena}alloc 7f00 usable 16 requested 6 kind slab name f\ncode 7f00 b82x\n${tail}"
          "line 4: code bytes for 7f00 are not an even number of hex digits")
malformed(code_elsewhere "${header}${arena}alloc 7f00 usable 16 requested 6 kind slab name f\ncode 7e00 c3\n${tail}"
          "line 4: code bytes for 7e00 do not follow the \"alloc 7e00\" line")
malformed(unknown_record "${header}${arena}bogus 1 2\n${tail}" "line 3: unknown record \"bogus\"")
malformed(short_record "${header}${arena}order\n${tail}" "line 3: \"order\" record without its value")
malformed(after_end "${header}${arena}${tail}${arena}" "line 5: \"arena\" after the final \"end\" line")

# Standard input is named as such.
execute_process(COMMAND ${DUMP} - INPUT_FILE ${WORK_DIR}/not_a_dump.dump RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 1 OR NOT err MATCHES "standard input is not a valid jitalloc dump")
  message(SEND_ERROR "stdin: exit ${rc}, stderr: ${err}")
endif()
