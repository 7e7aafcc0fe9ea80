// A preset's dimensions are checked at compile time: 4 heads cannot split width 30.
// expect: width_not_divisible_by_num_heads
#include <griffin/griffin.hpp>
using bad = griffin::preset<griffin::griffin<3>, griffin::dimensions{.vocab_size = 8, .width = 30, .mlp_expanded_width = 8,
                                                                      .num_heads = 4, .lru_width = 32,
                                                                      .attention_window_size = 4}>;
auto c = bad::make_config();
