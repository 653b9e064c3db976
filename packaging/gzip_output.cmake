# cmake -P helper for packaging/CMakeLists.txt: writes OUTPUT (gzip -9n: no name, no timestamp, so
# the package is reproducible and lintian is content) from INPUT, or from what COMMAND prints.
#   -DCOMMAND="prog;arg" -DPLAIN=file.8 -DOUTPUT=file.8.gz   run prog, keep its output, gzip it
#   -DINPUT=changelog -DOUTPUT=changelog.Debian.gz             gzip a file
if(DEFINED COMMAND)
  execute_process(COMMAND ${COMMAND} OUTPUT_FILE ${PLAIN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${COMMAND} failed: ${rc}")
  endif()
  set(INPUT ${PLAIN})
endif()
execute_process(COMMAND gzip -9n -c ${INPUT} OUTPUT_FILE ${OUTPUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip ${INPUT} failed: ${rc}")
endif()
