#include "server/services.hpp"

namespace vapipe::server {

Services::Services(pipeline::Pipeline& pipeline) : pipeline_(pipeline) {}

Services::~Services() = default;

}  // namespace vapipe::server
