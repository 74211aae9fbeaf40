#include "core/shape_inference.hpp"
// (being written by the compiler work)
