# Writes OUT (a header defining MEMRES_BENCH_COMMIT) from `git rev-parse --short HEAD` in SRC,
# at every build, touching it only when the commit changed. "unknown" without git.
set(_commit "unknown")
find_program(_git git)
if(_git)
  execute_process(COMMAND ${_git} rev-parse --short HEAD WORKING_DIRECTORY ${SRC}
                  OUTPUT_VARIABLE _out OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                  RESULT_VARIABLE _rc)
  if(_rc EQUAL 0 AND _out)
    set(_commit "${_out}")
  endif()
endif()
set(_text "#define MEMRES_BENCH_COMMIT \"${_commit}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} _old)
endif()
if(NOT _old STREQUAL _text)
  file(WRITE ${OUT} "${_text}")
endif()
