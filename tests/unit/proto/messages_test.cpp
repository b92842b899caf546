#include "discarbiter/proto/messages.hpp"

#include <gtest/gtest.h>

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
  const json ok = make_reply(7, {{"lock_count", 2}});
  EXPECT_EQ(ok, (json{{"id", 7}, {"ok", true}, {"lock_count", 2}}));
  const json err = make_error_reply(7, Error{errc::recorder_locked, "held by X"});
  EXPECT_EQ(err["ok"], false);
  EXPECT_EQ(err["error"]["code"], 3232367120U);
  EXPECT_EQ(err["error"]["name"], "E_IMAPI_RECORDER_LOCKED");
  EXPECT_EQ(err["error"]["message"], "held by X");
  EXPECT_TRUE(make_error_reply(std::nullopt, Error{})["id"].is_null());
  EXPECT_EQ(make_event("granted", {{"drive", "sim0"}})["event"], "granted");
}

TEST(Messages, IncomingParsesRepliesErrorsAndEvents) {
  auto r = parse_incoming(Frame{make_error_reply(3, Error{errc::not_locked, "no"}), {}});
  ASSERT_TRUE(r.ok());
  const auto& reply = std::get<Reply>(*r);
  EXPECT_EQ(reply.id, 3U);
  ASSERT_TRUE(reply.error);
  EXPECT_EQ(reply.error->code, errc::not_locked);
  auto e = parse_incoming(Frame{make_event("released", {{"drive", "sim0"}}), {}});
  EXPECT_EQ(std::get<Event>(*e).name, "released");
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
  const DriveSummary drive{"sim0", "simulated:0", "simulated", "V", "P", "R", "owned", owner};
  const auto back = json(drive).get<DriveSummary>();
  EXPECT_EQ(back.owner->client_name, "Burner");
  EXPECT_EQ(back.owner->lock_count, 2U);
  const ExecuteReply ex{2, {0x70, 0, 5}, 36};
  const auto exb = json(ex).get<ExecuteReply>();
  EXPECT_EQ(exb.sense, ex.sense);
  EXPECT_EQ(exb.data_len, 36U);
  const HelloReply hello{"0.1.0", 1, {"a", "b"}};
  EXPECT_EQ(json(hello).get<HelloReply>().capabilities.size(), 2U);
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

}  // namespace
}  // namespace discarbiter::proto
