// Result<T>: a value or an Error, for the core's [[nodiscard]] returns
// (std::expected is C++23; this is the part of it the project uses).
#pragma once

#include <cassert>
#include <utility>
#include <variant>

#include "discarbiter/proto/errors.hpp"

namespace discarbiter {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return state_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(state_));
  }
  const Error& error() const& {
    assert(!ok());
    return std::get<1>(state_);
  }

  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Error> state_;
};

/// For operations that produce nothing but may fail.
struct Done {
  friend bool operator==(Done, Done) = default;
};

}  // namespace discarbiter
