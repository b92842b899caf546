// Runs an io_context until something has happened, with a deadline: the
// transport tests wait on events, never for a time.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>

namespace discarbiter::transport::test {

/// Runs `io` until `done()` or 5 s have passed; returns done().
template <typename Predicate>
bool run_until(boost::asio::io_context& io, Predicate done) {
  using namespace std::chrono_literals;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_one_for(100ms);
  }
  return done();
}

}  // namespace discarbiter::transport::test
