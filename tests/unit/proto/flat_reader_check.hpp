// The flat object reader (FrameDecoder::set_flat_objects, the client's
// reader) held to nlohmann: shared by messages_test.cpp and fuzz_frame.
#pragma once

#include <exception>
#include <string>
#include <typeinfo>
#include <variant>

#include <fmt/format.h>

#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/incoming.hpp"
#include "discarbiter/proto/messages.hpp"
#include "discarbiter/proto/wire.hpp"

namespace discarbiter::proto::testing {

/// What differs between one JSON part read by nlohmann (`by_tree`) and by the
/// flat reader (`by_flat`, which may have left it to nlohmann too): empty when
/// they hold the same members and parse_request gives the same id, body or
/// error (code and message) from both.
inline std::string flat_reader_difference(const Frame& by_tree, const Frame& by_flat) {
  if (!by_flat.flat) {
    return by_tree.json == by_flat.json ? "" : "left to nlohmann, yet a different tree";
  }
  if (by_flat.flat->members.size() != by_tree.json.size()) {
    return "a different number of members";
  }
  for (const auto& [key, value] : by_flat.flat->members) {
    const auto tree_value = by_tree.json.find(key);
    if (tree_value == by_tree.json.end() ||
        *tree_value != std::visit([](const auto& v) { return nlohmann::json(v); }, value)) {
      return fmt::format("member '{}' differs", key);
    }
  }
  const auto a = parse_request(by_tree);
  const auto b = parse_request(by_flat);
  if (a.id != b.id || a.body.ok() != b.body.ok()) {
    return "parse_request's id or verdict differs";
  }
  if (!a.body.ok()) {
    return a.body.error().code == b.body.error().code &&
                   a.body.error().message == b.body.error().message
               ? ""
               : fmt::format("error '{}' against '{}'", a.body.error().message,
                             b.body.error().message);
  }
  return encode_request(Request{0, *a.body}) == encode_request(Request{0, *b.body})
             ? ""
             : "parse_request's bodies differ";
}

/// Whether `a` and `b` read as T alike: the same value or the same exception.
template <typename T>
bool read_alike_as(const ReplyJson& a, const ReplyJson& b) {
  const auto read = [](const ReplyJson& j) -> std::variant<T, std::string> {
    try {
      return j.get<T>();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  return read(a) == read(b);
}

/// What differs between parse_incoming's reading of the two frames (as
/// flat_reader_difference's): empty when both give the same error, the same
/// event, or the same reply (id, error, payload, and its body read as every
/// reply type with the same value or the same exception).
inline std::string incoming_difference(const Frame& by_tree, const Frame& by_flat) {
  const auto a = parse_incoming(by_tree);
  const auto b = parse_incoming(by_flat);
  if (a.ok() != b.ok()) {
    return "parse_incoming's verdict differs";
  }
  if (!a.ok()) {
    return a.error().code == b.error().code && a.error().message == b.error().message
               ? ""
               : fmt::format("error '{}' against '{}'", a.error().message, b.error().message);
  }
  if (const auto* event = std::get_if<Event>(&*a)) {
    const auto* other = std::get_if<Event>(&*b);
    return other && *other == *event ? "" : "the events differ";
  }
  const auto& x = std::get<Reply>(*a);
  const auto* y = std::get_if<Reply>(&*b);
  if (!y || x.id != y->id || x.payload != y->payload ||
      x.error.has_value() != y->error.has_value() ||
      (x.error && (x.error->code != y->error->code || x.error->message != y->error->message))) {
    return "the replies' id, payload or error differ";
  }
  const bool alike = [&]<typename... T>(std::variant<T...>*) {
    return (read_alike_as<T>(x.body, y->body) && ...);
  }(static_cast<ReplyBody*>(nullptr));
  return alike ? "" : "the reply's body reads differently as some reply type";
}

}  // namespace discarbiter::proto::testing
