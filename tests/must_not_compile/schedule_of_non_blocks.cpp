// A schedule lists residual blocks; a model over anything else is refused.
// expect: template constraint failure|constraints not satisfied
#include <griffin/griffin.hpp>
griffin::model<griffin::schedule<griffin::R, int>>* m = nullptr;
