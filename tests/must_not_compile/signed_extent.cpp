// Kernel sizes are unsigned or fixed<N>; a signed int is refused, not silently converted.
// expect: Extent
#include <griffin/griffin.hpp>
void f(const float* x, const float* s, float* y) { griffin::kernels::rms_norm(x, s, y, int{5}); }
