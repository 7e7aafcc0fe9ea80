# griffin-checkpoint convert: a golden case rewritten in the transformers
# layout (sharded) and back to the official layout still passes
# griffin-conformance; griffin-checkpoint info reads both.
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
file(REMOVE_RECURSE ${WORK_DIR})
run(${CHECKPOINT} convert ${CASE} ${WORK_DIR}/hf --format transformers --dtype f32 --shard-mb 1)
file(COPY ${CASE}/expected.safetensors DESTINATION ${WORK_DIR}/hf)
run(${CONFORMANCE} ${WORK_DIR}/hf)
run(${CHECKPOINT} convert ${WORK_DIR}/hf ${WORK_DIR}/official --format official --dtype f32)
file(COPY ${CASE}/expected.safetensors DESTINATION ${WORK_DIR}/official)
run(${CONFORMANCE} ${WORK_DIR}/official)
run(${CHECKPOINT} info ${WORK_DIR}/hf)
