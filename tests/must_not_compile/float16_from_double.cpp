// A float16 holds stored bits: made from a double it must not compile.
// expect: deleted
#include <griffin/griffin.hpp>
griffin::float16 half(0.5);
