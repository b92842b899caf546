#include <boost/asio/error.hpp>

#include "transport/session.hpp"

namespace discarbiter::transport {

bool is_peer_gone(const boost::system::error_code& ec) {
  namespace error = boost::asio::error;
  return ec == error::eof || ec == error::connection_reset || ec == error::broken_pipe;
}

}  // namespace discarbiter::transport
