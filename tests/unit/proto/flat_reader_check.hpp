// The flat request reader (FrameDecoder::set_flat_objects) held to nlohmann:
// shared by messages_test.cpp and the fuzz_frame harness.
#pragma once

#include <string>
#include <variant>

#include <fmt/format.h>

#include "discarbiter/proto/frame.hpp"
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

}  // namespace discarbiter::proto::testing
