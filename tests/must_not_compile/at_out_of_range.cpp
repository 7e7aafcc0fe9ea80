// at_c checks its index.
// expect: block index out of range
#include <griffin/griffin.hpp>
griffin::at_c<griffin::hawk<2>, 2>* p = nullptr;
