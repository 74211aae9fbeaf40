#include "vapipe/runtime.hpp"
#include "core/error.hpp"
// (being written)
