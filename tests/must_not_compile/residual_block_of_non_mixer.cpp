// residual_block wraps a temporal mixer; the MLP is not one.
// expect: TemporalMixer
#include <griffin/griffin.hpp>
griffin::residual_block<griffin::mlp_block>::weights w;
