// A bfloat16 holds stored bits: made from a float it would have held the
// bits 0 (C++20 parenthesised aggregate initialisation); it must not compile.
// expect: deleted
#include <griffin/griffin.hpp>
griffin::bfloat16 half(0.5f);
