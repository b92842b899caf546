#include <windows.h>

#include <boost/asio/error.hpp>

#include "transport/session.hpp"

namespace discarbiter::transport {

bool is_peer_gone(const boost::system::error_code& ec) {
  namespace error = boost::asio::error;
  if (ec == error::eof || ec == error::broken_pipe)
    return true;
  // N.B. a pipe client that has gone shows up as these Win32 errors, which
  // Asio passes through in the system category.
  if (ec.category() != boost::system::system_category())
    return false;
  switch (ec.value()) {
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
      return true;
    default:
      return false;
  }
}

}  // namespace discarbiter::transport
