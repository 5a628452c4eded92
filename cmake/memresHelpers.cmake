# Warning flags and sanitizers, applied per target.
function(memres_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
                         -Wmissing-prototypes -Wno-unused-parameter)
  if(MEMRES_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

function(memres_sanitize target)
  if(MEMRES_SANITIZE)
    target_compile_options(${target} PUBLIC -fsanitize=${MEMRES_SANITIZE} -fno-omit-frame-pointer
                           -fno-sanitize-recover=all)
    target_link_options(${target} PUBLIC -fsanitize=${MEMRES_SANITIZE})
  endif()
endfunction()
