#include "discarbiter/proto/messages.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include <fmt/format.h>

#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/incoming.hpp"
#include "discarbiter/proto/wire.hpp"
#include "proto/flat_reader_check.hpp"

namespace discarbiter::proto {
namespace {

using nlohmann::json;

Frame through_the_wire(const Bytes& bytes) {
  FrameDecoder d;
  d.feed(bytes);
  auto out = d.next();
  EXPECT_EQ(out.status, FrameDecoder::Status::frame);
  return std::move(out.frame);
}

RequestBody round_trip(RequestBody body) {
  auto parsed = parse_request(through_the_wire(encode_request(Request{42, std::move(body)})));
  EXPECT_EQ(parsed.id, 42U);
  EXPECT_TRUE(parsed.body.ok()) << (parsed.body.ok() ? "" : parsed.body.error().message);
  return std::move(parsed.body).value();
}

Error parse_error(json j, Bytes payload = {}) {
  auto parsed = parse_request(Frame{std::move(j), std::move(payload)});
  EXPECT_FALSE(parsed.body.ok());
  return parsed.body.ok() ? Error{} : parsed.body.error();
}

TEST(Messages, HelloRoundTrips) {
  const auto body = round_trip(HelloRequest{1, "My Burner", 4242});
  const auto& v = std::get<HelloRequest>(body);
  EXPECT_EQ(v.protocol, 1);
  EXPECT_EQ(v.client_name, "My Burner");
  EXPECT_EQ(v.pid, 4242U);
}

TEST(Messages, EmptyRequestsRoundTrip) {
  EXPECT_TRUE(std::holds_alternative<ListDrivesRequest>(round_trip(ListDrivesRequest{})));
  EXPECT_TRUE(std::holds_alternative<StatusRequest>(round_trip(StatusRequest{})));
  EXPECT_TRUE(std::holds_alternative<SubscribeRequest>(round_trip(SubscribeRequest{})));
}

TEST(Messages, DriveRequestsRoundTrip) {
  const auto a = std::get<AcquireRequest>(round_trip(AcquireRequest{"sim0", true, 1500}));
  EXPECT_EQ(a.drive, "sim0");
  EXPECT_TRUE(a.force);
  EXPECT_EQ(a.wait_ms, 1500U);
  EXPECT_EQ(std::get<ReleaseRequest>(round_trip(ReleaseRequest{"sim1"})).drive, "sim1");
  EXPECT_EQ(std::get<OwnerRequest>(round_trip(OwnerRequest{"sim2"})).drive, "sim2");
  EXPECT_EQ(std::get<BreakRequest>(round_trip(BreakRequest{"sim3"})).drive, "sim3");
}

TEST(Messages, ExecuteCarriesDataOutAsRawPayload) {
  const Bytes data(4096, 0xAB);
  const Bytes wire = encode_request(Request{
      1, ExecuteRequest{"sim0", {0x2A, 0, 0, 0, 0, 0, 0, 0, 2, 0}, Direction::out, 0, 200, data}});
  // N.B. the data travels after the JSON, not base64'd inside it.
  EXPECT_LT(wire.size(), data.size() + 200);
  const auto e = std::get<ExecuteRequest>(parse_request(through_the_wire(wire)).body.value());
  EXPECT_EQ(e.cdb[0], 0x2A);
  EXPECT_EQ(e.direction, Direction::out);
  EXPECT_EQ(e.timeout_s, 200U);
  EXPECT_EQ(e.data_out, data);
}

TEST(Messages, ExecuteDataInRoundTrips) {
  const auto e = std::get<ExecuteRequest>(round_trip(
      ExecuteRequest{"sim0", {0x12, 0, 0, 0, 36, 0}, Direction::in, 36, std::nullopt, {}}));
  EXPECT_EQ(e.data_in_len, 36U);
  EXPECT_EQ(e.timeout_s, std::nullopt);
}

TEST(Messages, UnknownOpIsNamed) {
  const auto e = parse_error({{"id", 1}, {"op", "format_c"}});
  EXPECT_EQ(e.code, errc::unknown_request);
  EXPECT_NE(e.message.find("format_c"), std::string::npos);
}

TEST(Messages, MissingOrBadIdIsInvalidArgWithNoIdToEcho) {
  auto parsed = parse_request(Frame{{{"op", "status"}}, {}});
  EXPECT_EQ(parsed.id, std::nullopt);
  EXPECT_EQ(parsed.body.error().code, errc::invalid_arg);
  parsed = parse_request(Frame{{{"id", "seven"}, {"op", "status"}}, {}});
  EXPECT_EQ(parsed.id, std::nullopt);
  EXPECT_NE(parsed.body.error().message.find("'id'"), std::string::npos);
  parsed = parse_request(Frame{{{"id", -1}, {"op", "status"}}, {}});
  EXPECT_EQ(parsed.id, std::nullopt);
}

TEST(Messages, WrongTypesNameTheField) {
  struct Case {
    json request;
    std::string field;
  };
  const Case cases[] = {
      {{{"id", 1}, {"op", 7}}, "'op'"},
      {{{"id", 1}, {"op", "acquire"}}, "'drive'"},
      {{{"id", 1}, {"op", "acquire"}, {"drive", 3}}, "'drive'"},
      {{{"id", 1}, {"op", "acquire"}, {"drive", "sim0"}, {"wait_ms", -5}}, "'wait_ms'"},
      {{{"id", 1}, {"op", "acquire"}, {"drive", "sim0"}, {"wait_ms", 1.5}}, "'wait_ms'"},
      {{{"id", 1}, {"op", "acquire"}, {"drive", "sim0"}, {"wait_ms", 5000000000ULL}}, "'wait_ms'"},
      {{{"id", 1}, {"op", "acquire"}, {"drive", "sim0"}, {"force", "yes"}}, "'force'"},
      {{{"id", 1}, {"op", "hello"}, {"client_name", "x"}}, "'protocol'"},
      {{{"id", 1}, {"op", "execute"}, {"drive", "sim0"}, {"cdb", "zz"}}, "'cdb'"},
      {{{"id", 1}, {"op", "execute"}, {"drive", "sim0"}, {"cdb", "0000"}}, "'cdb'"},
      {{{"id", 1},
        {"op", "execute"},
        {"drive", "sim0"},
        {"cdb", "000000000000"},
        {"direction", "up"}},
       "'direction'"},
      {{{"id", 1},
        {"op", "execute"},
        {"drive", "sim0"},
        {"cdb", "000000000000"},
        {"data_in_len", 5}},
       "'data_in_len'"},
  };
  for (const auto& c : cases) {
    const auto e = parse_error(c.request);
    EXPECT_EQ(e.code, errc::invalid_arg) << c.request.dump();
    EXPECT_NE(e.message.find(c.field), std::string::npos)
        << c.request.dump() << " -> " << e.message;
  }
}

TEST(Messages, PayloadMustMatchDirection) {
  const json out_without_payload{{"id", 1},
                                 {"op", "execute"},
                                 {"drive", "d"},
                                 {"cdb", "2A0000000000000001 00"},
                                 {"direction", "out"}};
  EXPECT_EQ(parse_error(out_without_payload).code, errc::invalid_arg);
  const json none_with_payload{
      {"id", 1}, {"op", "execute"}, {"drive", "d"}, {"cdb", "000000000000"}};
  EXPECT_EQ(parse_error(none_with_payload, Bytes{1}).code, errc::invalid_arg);
}

TEST(Messages, RepliesAndEventsHaveTheDesignCardsShape) {
  const json ok = through_the_wire(encode_reply(7, AcquireReply{"sim0", 2})).json;
  EXPECT_EQ(ok, (json{{"id", 7}, {"ok", true}, {"drive", "sim0"}, {"lock_count", 2}}));
  const json err = make_error_reply(7, Error{errc::recorder_locked, "held by X"});
  EXPECT_EQ(err["ok"], false);
  EXPECT_EQ(err["error"]["code"], 3232367120U);
  EXPECT_EQ(err["error"]["name"], "E_IMAPI_RECORDER_LOCKED");
  EXPECT_EQ(err["error"]["message"], "held by X");
  EXPECT_TRUE(make_error_reply(std::nullopt, Error{})["id"].is_null());
  EXPECT_EQ(through_the_wire(encode_error_reply(7, Error{errc::not_locked, "no"})).json,
            make_error_reply(7, Error{errc::not_locked, "no"}));
  EXPECT_EQ(json(Event{Granted{"sim0", {}}})["event"], "granted");
}

TEST(Messages, IncomingParsesRepliesErrorsAndEvents) {
  auto r = parse_incoming(Frame{make_error_reply(3, Error{errc::not_locked, "no"}), {}});
  ASSERT_TRUE(r.ok());
  const auto& reply = std::get<Reply>(*r);
  EXPECT_EQ(reply.id, 3U);
  ASSERT_TRUE(reply.error);
  EXPECT_EQ(reply.error->code, errc::not_locked);
  auto e = parse_incoming(Frame{json(Event{Released{"sim0", "A", 1, "released"}}), {}});
  EXPECT_EQ(event_name(std::get<Event>(*e)), "released");
  EXPECT_FALSE(parse_incoming(Frame{{{"id", 1}}, {}}).ok());  // no "ok"
}

TEST(Messages, TypedRepliesRoundTrip) {
  const OwnerInfo owner{"Burner",
                        3,
                        4242,
                        "alice",
                        1000U,
                        std::nullopt,
                        "/usr/bin/burn",
                        2,
                        "2026-11-24T10:00:00.000Z",
                        true};
  EXPECT_EQ(json(owner).get<OwnerInfo>().uid, 1000U);
  EXPECT_FALSE(json(owner).contains("sid"));
  const DriveSummary drive{"sim0", "simulated:0", "simulated", "V",  "P",
                           "R",    "owned",       owner,       65536};
  const auto back = json(drive).get<DriveSummary>();
  EXPECT_EQ(back.owner->client_name, "Burner");
  EXPECT_EQ(back.max_transfer, 65536U);
  EXPECT_EQ(back.owner->lock_count, 2U);
  const ExecuteReply ex{2, {0x70, 0, 5}, 36, errc::command_has_sense_data};
  const auto exb = json(ex).get<ExecuteReply>();
  EXPECT_EQ(exb.sense, ex.sense);
  EXPECT_EQ(exb.data_len, 36U);
  EXPECT_EQ(exb.code, errc::command_has_sense_data);
  const HelloReply hello{"0.1.0", 1, {"a", "b"}, 1048576};
  EXPECT_EQ(json(hello).get<HelloReply>().capabilities.size(), 2U);
  EXPECT_EQ(json(hello).get<HelloReply>().max_transfer, 1048576U);
}

// ---- typed replies, events and the status document --------------------------
// Each is pinned to the JSON text b823132 wrote by hand (dispatcher.cpp,
// arbiter.cpp, service_app.cpp): the wire did not change when they became
// types. Keys come out sorted, so the text is exact.

/// The JSON part of a frame, as the bytes travel.
std::string json_text(const Bytes& frame) {
  // N.B. each byte widened first: a uint8_t shifted is an int (-Wsign-conversion).
  const auto byte = [&](std::size_t i) { return static_cast<std::uint32_t>(frame[i]); };
  const std::uint32_t length = byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24);
  return {frame.begin() + kFrameHeaderSize,
          frame.begin() + static_cast<std::ptrdiff_t>(kFrameHeaderSize + length)};
}

OwnerInfo linux_owner() {
  return {"Burner",
          3,
          4242,
          "alice",
          1000U,
          std::nullopt,
          "/usr/bin/burn",
          2,
          "2026-11-24T10:00:00.125Z",
          false};
}
OwnerInfo windows_owner() {
  return {"Burner",
          5,
          77,
          "HOST\\bob",
          std::nullopt,
          "S-1-5-21-1",
          "C:\\burn.exe",
          1,
          "2026-11-24T10:00:00.125Z",
          true};
}
DriveSummary held_drive() {
  return {"sim0", "simulated:0", "simulated",   "DISCARB", "Simulated MMC",
          "0001", "owned",       linux_owner(), 64 * 1024};
}
DriveSummary free_drive() {
  return {"sim1", "simulated:1", "simulated",  "DISCARB",  "Simulated MMC",
          "0001", "free",        std::nullopt, 1024 * 1024};
}
const Bytes kSense{0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0};

StatusDocument status_document() {
  StatusDocument doc;
  doc.drives.push_back(
      DriveStatus{held_drive(),
                  "owned",
                  "simulated",
                  true,
                  false,
                  "opcode 0x28 timed out: no answer",
                  {{"Other", 4, 4250, "2026-11-24T10:00:01.000Z", "2026-11-24T10:00:31.000Z"}},
                  {3, 1, 0}});
  doc.drives.push_back(
      DriveStatus{free_drive(), "free", "simulated", false, false, std::nullopt, {}, {3, 1, 0}});
  doc.clients.push_back(ClientStatus{
      3, "Burner", 4242, "alice", 1000U, std::nullopt, "2026-11-24T09:59:59.900Z", {{"sim0", 2}}});
  doc.clients.push_back(ClientStatus{
      4, "Other", 4250, "HOST\\bob", std::nullopt, "S-1-5-21-1", "2026-11-24T10:00:01.000Z", {}});
  doc.service = {"0.1.0", 1, 1234, "linux", "/run/discarbiter/discarbiter.sock", 1.5, 0};
  return doc;
}

struct PinnedReply {
  ReplyBody body;
  const char* text;  // with "id": 7
};

std::vector<PinnedReply> pinned_replies() {
  return {
      {HelloReply{
           "0.1.0", 1, {"acquire-wait", "execute", "status", "subscribe", "break"}, 1024 * 1024},
       R"({"capabilities":["acquire-wait","execute","status","subscribe","break"],"id":7,"max_transfer":1048576,"ok":true,"protocol":1,"server_version":"0.1.0"})"},
      {DrivesReply{{held_drive(), free_drive()}},
       R"({"drives":[{"backend":"simulated","id":"sim0","max_transfer":65536,"owner":{"client_name":"Burner","exe":"/usr/bin/burn","force":false,"lock_count":2,"pid":4242,"session":3,"since":"2026-11-24T10:00:00.125Z","uid":1000,"user":"alice"},"path":"simulated:0","product":"Simulated MMC","revision":"0001","state":"owned","vendor":"DISCARB"},{"backend":"simulated","id":"sim1","max_transfer":1048576,"owner":null,"path":"simulated:1","product":"Simulated MMC","revision":"0001","state":"free","vendor":"DISCARB"}],"id":7,"ok":true})"},
      {StatusReply{status_document()},
       R"({"id":7,"ok":true,"status":{"clients":[{"client_name":"Burner","connected_since":"2026-11-24T09:59:59.900Z","locks":{"sim0":2},"pid":4242,"session":3,"uid":1000,"user":"alice"},{"client_name":"Other","connected_since":"2026-11-24T10:00:01.000Z","locks":{},"pid":4250,"session":4,"sid":"S-1-5-21-1","user":"HOST\\bob"}],"drives":[{"backend":"simulated","error":"opcode 0x28 timed out: no answer","id":"sim0","lock_state":"owned","max_transfer":65536,"os_lock":"simulated","owner":{"client_name":"Burner","exe":"/usr/bin/burn","force":false,"lock_count":2,"pid":4242,"session":3,"since":"2026-11-24T10:00:00.125Z","uid":1000,"user":"alice"},"path":"simulated:0","product":"Simulated MMC","revision":"0001","state":"owned","stats":{"commands":3,"errors":0,"timeouts":1},"tray_locked":true,"tray_persistent":false,"vendor":"DISCARB","waiters":[{"client_name":"Other","deadline":"2026-11-24T10:00:31.000Z","pid":4250,"session":4,"waiting_since":"2026-11-24T10:00:01.000Z"}]},{"backend":"simulated","id":"sim1","lock_state":"free","max_transfer":1048576,"os_lock":"simulated","owner":null,"path":"simulated:1","product":"Simulated MMC","revision":"0001","state":"free","stats":{"commands":3,"errors":0,"timeouts":1},"tray_locked":false,"tray_persistent":false,"vendor":"DISCARB","waiters":[]}],"service":{"endpoint":"/run/discarbiter/discarbiter.sock","log_dropped":0,"pid":1234,"platform":"linux","protocol":1,"uptime_s":1.5,"version":"0.1.0"}}})"},
      {AcquireReply{"sim0", 2}, R"({"drive":"sim0","id":7,"lock_count":2,"ok":true})"},
      {ReleaseReply{"sim0", 0}, R"({"drive":"sim0","id":7,"lock_count":0,"ok":true})"},
      {OwnerReply{"sim0", linux_owner()},
       R"({"drive":"sim0","id":7,"ok":true,"owner":{"client_name":"Burner","exe":"/usr/bin/burn","force":false,"lock_count":2,"pid":4242,"session":3,"since":"2026-11-24T10:00:00.125Z","uid":1000,"user":"alice"}})"},
      {OwnerReply{"sim1", std::nullopt}, R"({"drive":"sim1","id":7,"ok":true,"owner":null})"},
      {OwnerReply{"sim0", windows_owner()},
       R"({"drive":"sim0","id":7,"ok":true,"owner":{"client_name":"Burner","exe":"C:\\burn.exe","force":true,"lock_count":1,"pid":77,"session":5,"sid":"S-1-5-21-1","since":"2026-11-24T10:00:00.125Z","user":"HOST\\bob"}})"},
      {ExecuteReply{2, kSense, 0, errc::command_has_sense_data},
       R"({"code":11141632,"data_len":0,"id":7,"name":"S_IMAPI_COMMAND_HAS_SENSE_DATA","ok":true,"scsi_status":2,"sense":"700005000000000A00000000240000000000"})"},
      {ExecuteReply{0, {}, 36, errc::ok},
       R"({"code":0,"data_len":36,"id":7,"name":"S_OK","ok":true,"scsi_status":0,"sense":""})"},
      {SubscribeReply{}, R"({"id":7,"ok":true})"},
      {BreakReply{"sim0", linux_owner()},
       R"({"broken_owner":{"client_name":"Burner","exe":"/usr/bin/burn","force":false,"lock_count":2,"pid":4242,"session":3,"since":"2026-11-24T10:00:00.125Z","uid":1000,"user":"alice"},"drive":"sim0","id":7,"ok":true})"},
  };
}

struct PinnedEvent {
  Event event;
  const char* text;
};

std::vector<PinnedEvent> pinned_events() {
  return {
      {Acquired{"sim0", linux_owner()},
       R"({"drive":"sim0","event":"acquired","owner":{"client_name":"Burner","exe":"/usr/bin/burn","force":false,"lock_count":2,"pid":4242,"session":3,"since":"2026-11-24T10:00:00.125Z","uid":1000,"user":"alice"}})"},
      {Granted{"sim0", linux_owner()},
       R"({"drive":"sim0","event":"granted","owner":{"client_name":"Burner","exe":"/usr/bin/burn","force":false,"lock_count":2,"pid":4242,"session":3,"since":"2026-11-24T10:00:00.125Z","uid":1000,"user":"alice"}})"},
      {Released{"sim0", "Burner", 3, "session_ended"},
       R"({"cause":"session_ended","client_name":"Burner","drive":"sim0","event":"released","session":3})"},
      {LockBroken{"sim0", {"Admin", 9, 1, "root"}},
       R"({"by":{"client_name":"Admin","pid":1,"session":9,"user":"root"},"drive":"sim0","event":"lock_broken"})"},
      {DriveArrived{"sim0"}, R"({"drive":"sim0","event":"drive_arrived"})"},
      {DriveRemoved{"sim0", "/dev/sr0 was removed"},
       R"({"drive":"sim0","event":"drive_removed","reason":"/dev/sr0 was removed"})"},
      {DriveError{"sim0", "opcode 0x28 timed out: no answer"},
       R"({"drive":"sim0","event":"drive_error","reason":"opcode 0x28 timed out: no answer"})"},
      {DriveRecovered{"sim0"}, R"({"drive":"sim0","event":"drive_recovered"})"},
      {UnknownEvent{"drive_renamed", R"({"drive":"sim0","event":"drive_renamed","to":"sim9"})"},
       R"({"drive":"sim0","event":"drive_renamed","to":"sim9"})"},
  };
}

TEST(Messages, EveryReplyKeepsItsWireText) {
  std::set<std::size_t> covered;
  for (const auto& [body, text] : pinned_replies()) {
    covered.insert(body.index());
    EXPECT_EQ(json_text(encode_reply(7, body)), text);
  }
  EXPECT_EQ(covered.size(), std::variant_size_v<ReplyBody>) << "a reply type without a pin";
}

/// Strings the text writer must write as nlohmann does: quotes, backslashes,
/// controls, UTF-8 and the invalid bytes encode_frame replaces.
std::vector<std::string> awkward_strings() {
  return {"",
          "sim0",
          "a \"quoted\" name",
          "back\\slash",
          "tab\there\nnew line\x01\x1f\x7f",
          "Br\xc3\xbbleur \xe2\x9c\x93",
          "bad \xff\xfe utf-8 \xc3",
          std::string("nul\0inside", 11)};
}

TEST(Messages, TheStatusDocumentWrittenStraightIsWhatEncodeReplyWrites) {
  // status_json writes without an nlohmann tree; its bytes are encode_reply's,
  // whatever the strings hold: quotes, backslashes, controls, UTF-8 and the
  // invalid bytes encode_frame replaces; optionals set and empty.
  auto doc = status_document();
  EXPECT_EQ(encode_status_reply(7, status_json(doc)), encode_reply(7, StatusReply{doc}));
  for (const auto& text : awkward_strings()) {
    doc.clients.push_back(
        ClientStatus{99, text, 1, text, std::nullopt, text, text, {{text, 1}, {"sim0", 2}}});
    doc.drives[0].waiters.push_back({text, 99, 1, text, text});
    doc.drives[1].error = text;
    doc.drives[1].vendor = text;
    doc.service.endpoint = text;
    doc.service.uptime_s = 1e-7 + static_cast<double>(text.size()) / 3;
    EXPECT_EQ(encode_status_reply(18446744073709551615ULL, status_json(doc)),
              encode_reply(18446744073709551615ULL, StatusReply{doc}))
        << json_text(encode_reply(1, StatusReply{doc}));
  }
  doc = StatusDocument{};
  EXPECT_EQ(encode_status_reply(0, status_json(doc)), encode_reply(0, StatusReply{doc}));
}

// ---- the text writer and nlohmann ----------------------------------------------
// Every frame the service sends and every request the client sends is written
// without an nlohmann tree; these hold its bytes to what encode_frame writes
// from the nlohmann tree of the same message (the wire before the writer).

OwnerInfo owner_named(const std::string& text) {
  return {text, 3, 4242, text, 1000U, text, text, 2, text, true};
}

std::vector<ReplyBody> replies_holding(const std::string& text) {
  auto doc = status_document();
  doc.clients[0].client_name = text;
  doc.drives[1].error = text;
  return {HelloReply{text, 1, {text, "execute"}, 1024},
          DrivesReply{{held_drive(), DriveSummary{text, text, text, text, text, text, text,
                                                  owner_named(text), 7}}},
          StatusReply{doc},
          AcquireReply{text, 1},
          ReleaseReply{text, 0},
          OwnerReply{text, owner_named(text)},
          OwnerReply{text, std::nullopt},
          ExecuteReply{2, kSense, 0, errc::command_has_sense_data},
          ExecuteReply{0, {}, 36, errc::ok},
          SubscribeReply{},
          BreakReply{text, owner_named(text)}};
}

std::vector<Event> events_holding(const std::string& text) {
  return {Acquired{text, owner_named(text)},
          Granted{text, owner_named(text)},
          Released{text, text, 18446744073709551615ULL, text},
          LockBroken{text, {text, 9, 1, text}},
          DriveArrived{text},
          DriveRemoved{text, text},
          DriveError{text, text},
          DriveRecovered{text},
          UnknownEvent{"drive_renamed", R"({"drive":"sim0","event":"drive_renamed"})"}};
}

std::vector<Request> requests_holding(const std::string& text) {
  ExecuteRequest execute{
      text, {0x2A, 0, 0, 0, 0, 0, 0, 0, 0x20, 0}, Direction::out, 0, 30U, Bytes{1, 2, 3}};
  ExecuteRequest read{text, {0x12, 0, 0, 0, 36, 0}, Direction::in, 36, std::nullopt, {}};
  return {{0, HelloRequest{1, text, 4242}},
          {1, ListDrivesRequest{}},
          {2, StatusRequest{}},
          {3, AcquireRequest{text, true, 5000}},
          {4, ReleaseRequest{text}},
          {5, OwnerRequest{text}},
          {6, std::move(execute)},
          {7, std::move(read)},
          {8, SubscribeRequest{}},
          {18446744073709551615ULL, BreakRequest{text}}};
}

/// A request as an nlohmann tree, as the client built it before the writer.
json request_tree(const Request& request) {
  json j{{"id", request.id}, {"op", op_name(request.body)}};
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, HelloRequest>) {
          j.update({{"protocol", v.protocol}, {"client_name", v.client_name}, {"pid", v.pid}});
        } else if constexpr (std::is_same_v<T, AcquireRequest>) {
          j.update({{"drive", v.drive}, {"force", v.force}, {"wait_ms", v.wait_ms}});
        } else if constexpr (std::is_same_v<T, ExecuteRequest>) {
          j.update({{"drive", v.drive},
                    {"cdb", to_hex(v.cdb)},
                    {"direction", to_string(v.direction)},
                    {"data_in_len", v.data_in_len}});
          if (v.timeout_s)
            j["timeout_s"] = *v.timeout_s;
        } else if constexpr (requires { v.drive; }) {
          j["drive"] = v.drive;
        }
      },
      request.body);
  return j;
}

TEST(Messages, TheTextWriterWritesWhatNlohmannWritesForEveryMessage) {
  std::set<std::size_t> replies, events, requests;
  for (const auto& text : awkward_strings()) {
    for (const auto& body : replies_holding(text)) {
      replies.insert(body.index());
      for (const std::uint64_t id : {std::uint64_t{0}, std::uint64_t{18446744073709551615ULL}}) {
        json tree = body;
        tree["id"] = id;
        tree["ok"] = true;
        EXPECT_EQ(encode_reply(id, body, Bytes{9}), encode_frame(tree, Bytes{9}))
            << json_text(encode_frame(tree));
        const auto parts = encode_reply_parts(id, body, Bytes{9, 8});
        EXPECT_EQ(parts.head, encode_frame_head(tree, 2));
        EXPECT_EQ(parts.payload, (Bytes{9, 8}));
      }
    }
    for (const auto& event : events_holding(text)) {
      events.insert(event.index());
      EXPECT_EQ(encode_event(event), encode_frame(json(event))) << json_text(encode_event(event));
    }
    for (const auto& request : requests_holding(text)) {
      requests.insert(request.body.index());
      const auto* execute = std::get_if<ExecuteRequest>(&request.body);
      const Bytes payload = execute ? execute->data_out : Bytes();
      EXPECT_EQ(encode_request(request), encode_frame(request_tree(request), payload))
          << json_text(encode_request(request));
      EXPECT_EQ(encode_request_head(request, 5), encode_frame_head(request_tree(request), 5));
    }
    for (const auto& id : {std::optional<std::uint64_t>(), std::optional<std::uint64_t>(7)}) {
      for (const auto code : {errc::not_locked, errc::fail, errc::ok}) {
        const Error error{code, text};
        EXPECT_EQ(encode_error_reply(id, error), encode_frame(make_error_reply(id, error)))
            << json_text(encode_error_reply(id, error));
      }
    }
  }
  EXPECT_EQ(replies.size(), std::variant_size_v<ReplyBody>) << "a reply type left out";
  EXPECT_EQ(events.size(), std::variant_size_v<Event>) << "an event type left out";
  EXPECT_EQ(requests.size(), std::variant_size_v<RequestBody>) << "a request type left out";
}

TEST(Messages, EveryReplyRoundTripsThroughTheClientsReader) {
  auto read_back = [](const ReplyBody& body) {
    auto in = parse_incoming(through_the_wire(encode_reply(7, body, Bytes{1, 2, 3})));
    EXPECT_TRUE(in.ok());
    const auto& reply = std::get<Reply>(*in);
    EXPECT_EQ(reply.id, 7U);
    EXPECT_EQ(reply.payload, (Bytes{1, 2, 3}));
    // N.B. read as the type the request expects, as Client::call_for does.
    return std::visit(
        [&](const auto& sent) -> ReplyBody {
          return reply.body.get<std::decay_t<decltype(sent)>>();
        },
        body);
  };
  for (const auto& [body, text] : pinned_replies()) {
    EXPECT_TRUE(read_back(body) == body) << text;
  }
}

TEST(Messages, EveryEventKeepsItsWireText) {
  std::set<std::size_t> covered;
  for (const auto& [event, text] : pinned_events()) {
    covered.insert(event.index());
    EXPECT_EQ(json_text(encode_event(event)), text);
  }
  EXPECT_EQ(covered.size(), std::variant_size_v<Event>) << "an event type without a pin";
}

TEST(Messages, EveryEventRoundTripsThroughTheClientsReader) {
  for (const auto& [event, text] : pinned_events()) {
    auto in = parse_incoming(through_the_wire(encode_event(event)));
    ASSERT_TRUE(in.ok()) << text;
    EXPECT_TRUE(std::get<Event>(*in) == event) << text;
    EXPECT_EQ(event_name(std::get<Event>(*in)), json::parse(text)["event"]);
  }
}

TEST(Messages, TheStatusDocumentRoundTrips) {
  const StatusDocument doc = status_document();
  EXPECT_TRUE(json(doc).get<StatusDocument>() == doc);
  // Its parts: the arbiter's, and a drive entry that extends the summary.
  EXPECT_EQ(json(doc).at("drives"), json(static_cast<const ArbitrationStatus&>(doc)).at("drives"));
  const json drive = doc.drives[0];
  const json summary = held_drive();
  for (const auto& [key, value] : summary.items()) {
    EXPECT_EQ(drive.at(key), value) << key;
  }
}

TEST(Messages, AKnownEventWithAMissingFieldIsABadFrame) {
  const auto in = parse_incoming(Frame{{{"event", "released"}, {"drive", "sim0"}}, {}});
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.error().code, errc::bad_frame);
  EXPECT_NE(in.error().message.find("'released' event"), std::string::npos) << in.error().message;
}

// A malicious or broken service must not make the client library throw
// anything but a bad frame: an error reply whose message is not a string.
TEST(Messages, AnErrorReplyWithAMessageThatIsNotAStringIsABadFrame) {
  for (const json& message : {json(5), json(nullptr), json::array({"no"})}) {
    json sent = make_error_reply(3, Error{errc::not_locked, "no"});
    sent["error"]["message"] = message;
    Result<Incoming> in = Error{errc::ok, "not parsed"};
    EXPECT_NO_THROW(in = parse_incoming(Frame{sent, {}})) << message;
    ASSERT_FALSE(in.ok()) << message;
    EXPECT_EQ(in.error().code, errc::bad_frame) << message;
  }
}

// An unknown event is kept as text, which nlohmann writes recursively: one
// nested as deep as a frame allows must not overflow the client's stack.
TEST(Messages, AnEventNestedTooDeepIsABadFrame) {
  constexpr std::size_t kDepth = 30000;  // about what 64 KiB of JSON holds
  const auto text = R"({"event":"drive_renamed","to":)" + std::string(kDepth, '[') +
                    std::string(kDepth, ']') + "}";
  const auto in = parse_incoming(Frame{json::parse(text), {}});
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.error().code, errc::bad_frame);
  const json shallow{{"event", "drive_renamed"}, {"to", {{"a", {1, {2, 3}}}}}};
  EXPECT_TRUE(parse_incoming(Frame{shallow, {}}).ok());
}

// nlohmann would cast a float or an out-of-range number into an integer
// field: undefined behaviour for 1e300, a silent wrap for -1.
TEST(Messages, AnIntegerFieldThatIsNotAnIntegerOfItsRangeIsABadFrame) {
  for (const json& session : {json(1e300), json(-1), json(2.5), json("7")}) {
    json sent = Event{Released{"sim0", "A", 1, "released"}};
    sent["session"] = session;
    const auto in = parse_incoming(Frame{sent, {}});
    ASSERT_FALSE(in.ok()) << session;
    EXPECT_EQ(in.error().code, errc::bad_frame) << session;
  }
  json reply = AcquireReply{"sim0", 1};
  reply["lock_count"] = json(std::uint64_t{1} << 32);
  EXPECT_THROW((void)reply.get<AcquireReply>(), std::exception);
  reply["lock_count"] = 4294967295U;
  EXPECT_EQ(reply.get<AcquireReply>().lock_count, 4294967295U);
}

TEST(Messages, AnEventOfANewerServiceIsKeptWhole) {
  const json sent{{"event", "drive_renamed"}, {"drive", "sim0"}, {"to", "sim9"}};
  const auto in = parse_incoming(Frame{sent, {}});
  ASSERT_TRUE(in.ok());
  const auto& unknown = std::get<UnknownEvent>(std::get<Event>(*in));
  EXPECT_EQ(unknown.name, "drive_renamed");
  EXPECT_EQ(json::parse(unknown.json), sent);
}

TEST(Messages, HexAcceptsSpacesAndCaseAndRejectsJunk) {
  EXPECT_EQ(from_hex("12 00 0a FF"), (Bytes{0x12, 0x00, 0x0A, 0xFF}));
  EXPECT_EQ(to_hex(Bytes{0x12, 0xAB}), "12AB");
  EXPECT_EQ(from_hex("1"), std::nullopt);
  EXPECT_EQ(from_hex("1 2"), std::nullopt);
  EXPECT_EQ(from_hex("0x12"), std::nullopt);
}

TEST(Messages, TimesAreRfc3339Utc) {
  using namespace std::chrono;
  const auto t =
      sys_days{2026y / November / 24} + hours(10) + minutes(5) + seconds(7) + milliseconds(42);
  EXPECT_EQ(format_rfc3339(t), "2026-11-24T10:05:07.042Z");
}

// ---- requests read without nlohmann (FrameDecoder::set_flat_objects) -----------
// parse_flat_object takes only what it reads exactly as nlohmann does, and
// parse_request gives the same id, body or error (code and message) from
// either; anything the flat reader leaves goes to nlohmann.

/// Whether the flat reader took `text`; either way its reading is nlohmann's.
bool read_alike(const std::string& text) {
  auto flat = parse_flat_object(text);
  const json tree = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!flat) {
    return false;
  }
  EXPECT_TRUE(tree.is_object()) << text;
  const Bytes payload{1, 2};
  EXPECT_EQ(testing::flat_reader_difference(Frame{tree, payload}, Frame{json(), payload, flat}), "")
      << text;
  EXPECT_EQ(testing::incoming_difference(Frame{tree, payload}, Frame{json(), payload, flat}), "")
      << text;
  return true;
}

TEST(Messages, AFlatRequestReadsAsNlohmannReadsIt) {
  // Taken by the flat reader.
  for (
      const std::string& text : std::vector<std::string>{
          R"({"id":1,"op":"acquire","drive":"sim0"})",
          " \t\r\n{ \"id\" : 1 , \"op\" : \"release\" , \"drive\" : \"sim0\" }\n ",
          R"({})",
          R"({"id":0,"op":"status"})",
          R"({"id":18446744073709551615,"op":"status"})",
          R"({"id":null,"op":"status"})",
          R"({"id":"7","op":"status"})",
          R"({"id":true,"op":"status"})",
          R"({"op":"status"})",
          R"({"id":1})",
          R"({"id":1,"op":7})",
          R"({"id":1,"op":null})",
          R"({"id":1,"op":"bogus"})",
          R"({"id":1,"op":""})",
          R"({"id":1,"op":"acquire"})",
          R"({"id":1,"op":"acquire","drive":null})",
          R"({"id":1,"op":"acquire","drive":5})",
          R"({"id":1,"op":"acquire","drive":"sim0","force":"yes"})",
          R"({"id":1,"op":"acquire","drive":"sim0","force":true,"wait_ms":4294967295})",
          R"({"id":1,"op":"acquire","drive":"sim0","wait_ms":4294967296})",
          R"({"id":1,"op":"acquire","drive":"sim0","wait_ms":"5"})",
          R"({"id":1,"op":"hello","protocol":1,"client_name":"x","pid":5})",
          R"({"id":1,"op":"hello","protocol":65536,"client_name":"x"})",
          R"({"id":1,"op":"hello","client_name":"x"})",
          R"({"id":1,"op":"execute","drive":"sim0","cdb":"2A00000000000000200000","direction":"out"})",
          R"({"id":1,"op":"execute","drive":"sim0","cdb":"12 00 00 00 24 00","direction":"in","data_in_len":36,"timeout_s":5})",
          R"({"id":1,"op":"execute","drive":"sim0","cdb":"zz","direction":"in"})",
          R"({"id":1,"op":"execute","drive":"sim0","cdb":"1200","direction":"sideways"})",
          R"({"id":1,"op":"execute","drive":"sim0","cdb":"120000002400","data_in_len":3})",
          R"({"id":1,"op":"release","drive":"~!@#$%^&*()_+`-=[]{}|;':,./<>?"})",
          R"({"":1,"id":1,"op":"owner","drive":""})",
      }) {
    EXPECT_TRUE(read_alike(text)) << "left to nlohmann: " << text;
  }
  // Left to nlohmann: not JSON, or more than the flat reader takes.
  for (const std::string& text : std::vector<std::string>{
           R"()",
           R"(   )",
           R"([])",
           R"(7)",
           R"({"id":1,"op":"status"} x)",
           R"({"id":1,"op":"status"}{})",
           R"({"id":1,"op":"status",})",
           R"({"id":1,,"op":"status"})",
           R"({"id":1 "op":"status"})",
           R"({"id":01,"op":"status"})",
           R"({"id":-1,"op":"status"})",
           R"({"id":-0,"op":"status"})",
           R"({"id":1.0,"op":"status"})",
           R"({"id":1e2,"op":"status"})",
           R"({"id":1E2,"op":"status"})",
           R"({"id":+1,"op":"status"})",
           R"({"id":18446744073709551616,"op":"status"})",
           R"({"id":1,"op":"status","id":2})",
           R"({"id":1,"op":"st\u0061tus"})",
           R"({"id":1,"op":"a\"b"})",
           R"({"id":1,"op":"status","x":{}})",
           R"({"id":1,"op":"status","x":[1]})",
           R"({"id":1,"op":"status","x":tru})",
           R"({"id":1,"op":"status","x":True})",
           R"({"id":1,"op":"status","x":nulll})",
           R"({"id":1,"op":"status)",
           R"({"id":1,"op":'status'})",
           "{\"id\":1,\"op\":\"st\x01atus\"}",
           "{\"id\":1,\"op\":\"Br\xc3\xbbleur\"}",
           "{\"id\":1,\"op\":\"bad \xff\"}",
           "{\"id\":1,\"op\":\"tab\there\"}",
           std::string("{\"id\":1,\"op\":\"nul\0\"}", 20),
           "{\"id\":1,\"op\":\"status\"}\f",
       }) {
    EXPECT_FALSE(read_alike(text)) << "taken by the flat reader: " << text;
  }
}

TEST(Messages, AFlatObjectWithMoreMembersThanTheBoundIsLeftToNlohmann) {
  // The flat reader's duplicate check grows with the square of the members:
  // a 64 KiB request of thousands of keys must not be read by it (it stalled
  // every other client: ~50 ms a frame).
  const auto request = [](std::size_t members) {
    std::string text = R"({"id":1,"op":"owner","drive":"sim0")";
    for (std::size_t i = 3; i < members; ++i)
      text += fmt::format(",\"k{}\":0", i);
    return text + "}";
  };
  EXPECT_TRUE(read_alike(request(kMaxFlatMembers))) << "at the bound: flat";
  EXPECT_FALSE(read_alike(request(kMaxFlatMembers + 1))) << "beyond: nlohmann, same result";
  EXPECT_FALSE(parse_flat_object(request(7000)).has_value());
}

TEST(Messages, EveryFlatReplyAndEventReadsAsFromNlohmannsTree) {
  // The client reads a frame's JSON part flat where it can (read_frame).
  std::vector<std::string> flat_ones;
  for (const auto& [body, text] : pinned_replies()) {
    if (read_alike(text)) {
      flat_ones.push_back(text);
    }
  }
  for (const auto& [event, text] : pinned_events()) {
    if (read_alike(text)) {
      flat_ones.push_back(text);
    }
  }
  // The small replies and events are read without a tree (an execute reply
  // and an event then go to one: ReplyJson::get, parse_incoming); the others,
  // and error replies ("error" is an object), are left to nlohmann.
  EXPECT_EQ(
      flat_ones,
      (std::vector<std::string>{
          R"({"drive":"sim0","id":7,"lock_count":2,"ok":true})",
          R"({"drive":"sim0","id":7,"lock_count":0,"ok":true})",
          R"({"drive":"sim1","id":7,"ok":true,"owner":null})",
          R"({"code":11141632,"data_len":0,"id":7,"name":"S_IMAPI_COMMAND_HAS_SENSE_DATA","ok":true,"scsi_status":2,"sense":"700005000000000A00000000240000000000"})",
          R"({"code":0,"data_len":36,"id":7,"name":"S_OK","ok":true,"scsi_status":0,"sense":""})",
          R"({"id":7,"ok":true})",
          R"({"cause":"session_ended","client_name":"Burner","drive":"sim0","event":"released","session":3})",
          R"({"drive":"sim0","event":"drive_arrived"})",
          R"({"drive":"sim0","event":"drive_removed","reason":"/dev/sr0 was removed"})",
          R"({"drive":"sim0","event":"drive_error","reason":"opcode 0x28 timed out: no answer"})",
          R"({"drive":"sim0","event":"drive_recovered"})",
          R"({"drive":"sim0","event":"drive_renamed","to":"sim9"})",
      }));
  EXPECT_FALSE(read_alike(json_text(encode_error_reply(7, Error{errc::not_locked, "no"}))));
  // Flat objects that are not what a reply type holds: nlohmann's verdict.
  for (const std::string& text : std::vector<std::string>{
           R"({"id":7,"ok":true,"drive":"sim0","lock_count":4294967296})",
           R"({"id":7,"ok":true,"drive":"sim0","lock_count":"2"})",
           R"({"id":7,"ok":true,"drive":5,"lock_count":2})",
           R"({"id":7,"ok":true,"lock_count":2})",
           R"({"id":7,"ok":true,"drive":null,"lock_count":2})",
           R"({"id":7,"ok":true,"drive":"sim0","owner":"x"})",
           R"({"id":7,"ok":true,"drive":"sim0","owner":true})",
           R"({"id":7,"ok":true,"drive":"sim0","broken_owner":null})",
           R"({"id":7,"ok":true,"code":0,"data_len":36,"name":"S_OK","scsi_status":0,"sense":""})",
           R"({"id":7,"ok":true,"scsi_status":0,"sense":"zz","data_len":1,"code":0})",
           R"({"id":"7","ok":true})",
           R"({"id":null,"ok":false})",
           R"({"id":7,"ok":false,"error":"no"})",
           R"({"id":7,"ok":1})",
           R"({"id":7})",
           R"({"event":"released","drive":"sim0"})",
           R"({"event":5})",
           R"({"event":"acquired","drive":"sim0","owner":null})",
       }) {
    EXPECT_TRUE(read_alike(text)) << text;
  }
}

TEST(Messages, MutatedRequestsReadAsNlohmannReadsThem) {
  std::vector<std::string> seeds;
  for (const auto& text : {std::string("sim0"), std::string("a b")}) {
    for (const auto& request : requests_holding(text)) {
      seeds.push_back(json_text(encode_request(request)));
    }
    // N.B. and the replies and events the client reads (incoming_difference).
    for (const auto& reply : replies_holding(text)) {
      seeds.push_back(json_text(encode_reply(7, reply)));
    }
    for (const auto& event : events_holding(text)) {
      seeds.push_back(json_text(encode_event(event)));
    }
  }
  seeds.push_back(R"( { "id" : 12 , "op" : "acquire" , "drive" : "sim0" , "force" : false } )");
  static constexpr std::string_view kAlphabet =
      "{}[]\":, \t\n0123456789-+.eEtrufalsn\\/xA\x7f\x80\xc3";
  std::mt19937 random(15);  // a fixed seed: the same cases every run
  const auto pick = [&](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(random);
  };
  int taken = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text = seeds[pick(seeds.size())];
    for (std::size_t edits = 1 + pick(3); edits > 0 && !text.empty(); --edits) {
      const std::size_t at = pick(text.size());
      const char c = kAlphabet[pick(kAlphabet.size())];
      switch (pick(3)) {
        case 0:
          text[at] = c;
          break;
        case 1:
          text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), c);
          break;
        default:
          text.erase(at, 1);
      }
    }
    taken += read_alike(text) ? 1 : 0;
  }
  // N.B. most mutations still leave a flat object (a changed digit or letter).
  EXPECT_GT(taken, 2000);
}

}  // namespace
}  // namespace discarbiter::proto
