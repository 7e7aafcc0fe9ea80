// take_c cannot take more blocks than the schedule has.
// expect: N exceeds the schedule's size
#include <griffin/griffin.hpp>
griffin::take_c<3, griffin::schedule<griffin::R, griffin::A>>* p = nullptr;
