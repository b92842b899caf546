// What a client reads: a reply to one of its requests, or an event.
#pragma once

#include <cstdint>
#include <optional>
#include <variant>

#include <nlohmann/json.hpp>

#include "discarbiter/proto/errors.hpp"
#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/result.hpp"
#include "discarbiter/proto/wire.hpp"

namespace discarbiter::proto {

/// A reply's JSON object: an nlohmann tree or, when it is flat (the small
/// replies: acquire, release, owner of a free drive...), a FlatObject.
/// get<T>() reads it as T, one of ReplyBody's types, as nlohmann's from_json
/// does: the same value, or the same exception (a flat object that does not
/// read as T goes to nlohmann for its verdict).
struct ReplyJson {
  nlohmann::json tree;  // null when `flat` holds the members
  std::optional<FlatObject> flat{};
  template <typename T>
  T get() const;
};

/// A reply as read, before the caller (who knows which request it answers)
/// reads the body as that request's reply type: `body.get<AcquireReply>()`.
struct Reply {
  std::optional<std::uint64_t> id;
  std::optional<Error> error;  // set when ok is false
  ReplyJson body;              // the whole JSON object
  Bytes payload;
};
using Incoming = std::variant<Reply, Event>;
/// DA_E_BAD_FRAME for a frame that is neither a reply nor a well-formed event.
Result<Incoming> parse_incoming(Frame frame);

}  // namespace discarbiter::proto
