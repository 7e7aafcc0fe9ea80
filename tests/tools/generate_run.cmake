# griffin-generate end to end: a random model shaped like a golden case with
# the test tokenizer's vocabulary (rounded up, as released vocabularies are),
# then a seeded --prompt run twice (same text), greedy with int8 weights, and
# a two-turn --chat fed on stdin.
function(run out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
  set(${out_var}_err "${err}" PARENT_SCOPE)
endfunction()
function(expect text pattern)
  if(NOT "${text}" MATCHES "${pattern}")
    message(FATAL_ERROR "expected /${pattern}/ in:\n${text}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
run(ignored ${CHECKPOINT} random ${WORK_DIR} --like ${CASE} --vocab 512 --dtype f32)
file(COPY ${SPM_DIR}/tokenizer.model DESTINATION ${WORK_DIR})

set(common --model ${WORK_DIR} --max-tokens 12 --threads 2)
run(a ${GENERATE} ${common} --prompt "The model reads" --temperature 0.9 --top-p 0.95 --seed 4)
expect("${a_err}" "loaded .* in [0-9.]+ s")
expect("${a_err}" "prefill: [0-9]+ tokens in [0-9.]+ s \\([0-9.]+ tokens/s\\); decode: [0-9]+ tokens in [0-9.]+ s \\([0-9.]+ tokens/s\\)")
run(b ${GENERATE} ${common} --prompt "The model reads" --temperature 0.9 --top-p 0.95 --seed 4 --quiet)
if(NOT a STREQUAL b)
  message(FATAL_ERROR "the same seed gave different text:\n${a}\n---\n${b}")
endif()
if(NOT "${b_err}" STREQUAL "")
  message(FATAL_ERROR "--quiet still wrote to stderr:\n${b_err}")
endif()
run(c ${GENERATE} ${common} --prompt "Hello" --weights-type int8)

file(WRITE ${WORK_DIR}/chat.txt "Hi there\nAnd now?\n")
execute_process(COMMAND ${GENERATE} ${common} --chat --temperature 0.7 --seed 1 INPUT_FILE ${WORK_DIR}/chat.txt
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "--chat failed (${rc}):\n${out}\n${err}")
endif()
expect("${err}" "prefill: [0-9]+ tokens")
message(STATUS "prompt: ${a}\nchat: ${out}")
