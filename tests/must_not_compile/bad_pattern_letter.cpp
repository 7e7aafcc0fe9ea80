// Patterns use R, A and G only.
// expect: letters are R \(recurrent\), A \(local attention\) and G
#include <griffin/griffin.hpp>
using bad = griffin::pattern<"R X A">;
bad* p = nullptr;
