// Google Benchmark for the parts of a request's path that do no I/O: the
// frame codec, request parsing (bytes to a typed request, as a session does
// it) and the arbiter's transitions on the fake drive channel of the unit
// tests (tests/unit/core/fakes.hpp), so that the drive's work is not in the
// figure. Prints Google Benchmark's console table, then one line per
// benchmark for tests/bench/report.py:
//   bench: {"key":"micro_<name>","mean_ns":…,"real_ns":…,"n":<iterations>}
// Exits non-zero when a benchmark failed (a request refused, a frame not
// decoded), so the smoke test catches a broken path, never a slow one.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/arbiter.hpp"
#include "core/fakes.hpp"
#include "discarbiter/proto/frame.hpp"
#include "discarbiter/proto/incoming.hpp"
#include "discarbiter/proto/messages.hpp"
#include "discarbiter/proto/wire.hpp"

namespace discarbiter {
namespace {

using namespace std::chrono_literals;
using proto::Bytes;
using proto::FrameDecoder;

constexpr std::size_t kLargePayload = 64 * 1024;

// ---- frames ------------------------------------------------------------------

const nlohmann::json& small_json() {
  static const nlohmann::json j{{"id", 7}, {"op", "acquire"}, {"drive", "sim0"}};
  return j;
}

const nlohmann::json& execute_json() {
  static const nlohmann::json j{{"id", 9},
                                {"op", "execute"},
                                {"drive", "sim0"},
                                {"cdb", "2a00000000000000200000"},
                                {"direction", "out"}};
  return j;
}

void frame_encode(benchmark::State& state, const nlohmann::json& json, std::size_t payload_size) {
  const Bytes payload(payload_size, 0xA5);
  for (auto _ : state)
    benchmark::DoNotOptimize(proto::encode_frame(json, payload));
  if (payload_size > 0)
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload_size));
}

/// Feeds one encoded frame into the decoder and takes it out again (a
/// session's read loop, one read per frame); fails the benchmark if it does
/// not come out whole.
std::optional<proto::Frame> decode_one(benchmark::State& state, FrameDecoder& decoder,
                                       const Bytes& bytes) {
  decoder.feed(bytes);
  auto out = decoder.next();
  if (out.status != FrameDecoder::Status::frame) {
    state.SkipWithError("the frame did not decode");
    return std::nullopt;
  }
  return std::move(out.frame);
}

void frame_decode(benchmark::State& state, const nlohmann::json& json, std::size_t payload_size) {
  const Bytes bytes = proto::encode_frame(json, Bytes(payload_size, 0xA5));
  FrameDecoder decoder;
  for (auto _ : state) {
    auto frame = decode_one(state, decoder, bytes);
    if (!frame)
      break;
    benchmark::DoNotOptimize(frame);
  }
  if (payload_size > 0)
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload_size));
}

// ---- requests ----------------------------------------------------------------

/// A request from its bytes: the frame decoder, then parse_request (what a
/// session does with each request it reads, flat objects read without
/// nlohmann as the session reads them).
void request_parse(benchmark::State& state, const proto::Request& request) {
  const Bytes bytes = proto::encode_request(request);
  FrameDecoder decoder;
  decoder.set_flat_objects(true);
  for (auto _ : state) {
    auto frame = decode_one(state, decoder, bytes);
    if (!frame)
      break;
    auto parsed = proto::parse_request(std::move(*frame));
    if (!parsed.body.ok()) {
      state.SkipWithError(parsed.body.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(parsed);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes.size()));
}

/// A request's frame as the client writes it.
void request_encode(benchmark::State& state, const proto::Request& request) {
  for (auto _ : state)
    benchmark::DoNotOptimize(proto::encode_request(request));
}

/// A reply's frame as the service writes it (Dispatcher::Responder).
void reply_encode(benchmark::State& state, const proto::ReplyBody& body) {
  for (auto _ : state)
    benchmark::DoNotOptimize(proto::encode_reply_parts(7, body, {}));
}

/// An acquire reply's JSON part as the client reads it (read_frame: flat,
/// then parse_incoming and the reply type).
void reply_read_acquire(benchmark::State& state) {
  const Bytes bytes = proto::encode_reply(7, proto::AcquireReply{"sim0", 1});
  const std::string text(bytes.begin() + proto::kFrameHeaderSize, bytes.end());
  for (auto _ : state) {
    proto::Frame frame;
    frame.flat = proto::parse_flat_object(text);
    auto incoming = proto::parse_incoming(std::move(frame));
    if (!incoming) {
      state.SkipWithError(incoming.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(std::get<proto::Reply>(*incoming).body.get<proto::AcquireReply>());
  }
}

proto::Request hello_request() {
  return {1, proto::HelloRequest{proto::kProtocolVersion, "micro-bench", 4242}};
}

proto::Request acquire_request() {
  return {2, proto::AcquireRequest{"sim0", false, 5000}};
}

proto::Request execute_request() {
  proto::ExecuteRequest execute;
  execute.drive = "sim0";
  execute.cdb = {0x2A, 0, 0, 0, 0, 0, 0, 0, 0x20, 0};  // WRITE(10), 32 blocks of 2 KiB
  execute.direction = proto::Direction::out;
  execute.data_out = Bytes(kLargePayload, 0xA5);
  return {3, std::move(execute)};
}

// ---- the arbiter on the fake channel -----------------------------------------

class NullAudit final : public core::AuditLog {
 public:
  void record(const core::AuditRecord&) override {}
};

/// An arbiter with one fake drive ("sim0") whose answers come when run()
/// runs the fake scheduler, as in tests/unit/core/arbiter_test.cpp.
class ArbiterBench {
 public:
  explicit ArbiterBench(benchmark::State& state) : state_(state) {
    drive_ = std::make_shared<testing::FakeDrive>(scheduler_, "sim0");
    if (!arbiter_.add_drive(drive_).ok())
      state_.SkipWithError("add_drive failed");
    scheduler_.run();
  }

  core::SessionId client(const std::string& name, std::uint32_t pid) {
    const core::SessionId s =
        arbiter_.open_session(core::PeerIdentity{pid, "bench", pid, {}, "/bin/" + name}, {});
    if (!arbiter_.hello(s, name, pid).ok())
      state_.SkipWithError("hello failed");
    return s;
  }

  /// Starts an acquire; its answer lands in *into.
  void start_acquire(core::SessionId s, core::AcquireOptions options,
                     std::optional<Result<std::uint32_t>>* into) {
    arbiter_.acquire_exclusive_access(s, "sim0", options,
                                      [into](Result<std::uint32_t> r) { into->emplace(r); });
  }

  /// Acquires or releases and runs the drive's work; false (and the
  /// benchmark fails) unless the lock count is `expected` afterwards.
  bool acquire(core::SessionId s, std::uint32_t expected) {
    std::optional<Result<std::uint32_t>> answer;
    start_acquire(s, {}, &answer);
    return settle(answer, expected, "acquire");
  }
  bool release(core::SessionId s, std::uint32_t expected) {
    std::optional<Result<std::uint32_t>> answer;
    arbiter_.release_exclusive_access(s, "sim0",
                                      [&answer](Result<std::uint32_t> r) { answer.emplace(r); });
    return settle(answer, expected, "release");
  }

  /// Runs the posted drive work, then checks the answer.
  bool settle(const std::optional<Result<std::uint32_t>>& answer, std::uint32_t expected,
              const char* what) {
    scheduler_.run();
    // N.B. the fake drive records every CDB it was sent: keep that bounded.
    drive_->commands.clear();
    drive_->timeouts.clear();
    if (!answer || !answer->ok() || answer->value() != expected) {
      state_.SkipWithError(what);
      return false;
    }
    return true;
  }

 private:
  benchmark::State& state_;
  testing::FakeScheduler scheduler_;
  NullAudit audit_;
  core::Arbiter arbiter_{scheduler_, audit_, core::ArbiterConfig{}};
  std::shared_ptr<testing::FakeDrive> drive_;
};

/// A free drive: the first acquire (TUR, OS lock, PREVENT) and the final
/// release (ALLOWs, OS unlock), each step a fake channel call.
void arbiter_acquire_release_free(benchmark::State& state) {
  ArbiterBench bench(state);
  const auto a = bench.client("A", 1);
  for (auto _ : state) {
    if (!bench.acquire(a, 1) || !bench.release(a, 0))
      break;
  }
}

/// The owner's nested acquire and release (count 1 -> 2 -> 1): no drive work.
void arbiter_nested_acquire_release(benchmark::State& state) {
  ArbiterBench bench(state);
  const auto a = bench.client("A", 1);
  if (!bench.acquire(a, 1))
    return;
  for (auto _ : state) {
    if (!bench.acquire(a, 2) || !bench.release(a, 1))
      break;
  }
}

/// One hand-off per iteration: the waiter queues (a wait with a deadline),
/// the holder's final release grants it; the two sessions swap roles.
void arbiter_handoff(benchmark::State& state) {
  ArbiterBench bench(state);
  auto holder = bench.client("A", 1);
  auto waiter = bench.client("B", 2);
  if (!bench.acquire(holder, 1))
    return;
  for (auto _ : state) {
    std::optional<Result<std::uint32_t>> granted;
    bench.start_acquire(waiter, {.force = false, .wait = 5s}, &granted);
    if (!bench.release(holder, 0) || !bench.settle(granted, 1, "the waiter's grant"))
      break;
    std::swap(holder, waiter);
  }
}

void register_all() {
  benchmark::RegisterBenchmark("frame_encode_small", frame_encode, small_json(), 0);
  benchmark::RegisterBenchmark("frame_encode_64k", frame_encode, execute_json(), kLargePayload);
  benchmark::RegisterBenchmark("frame_decode_small", frame_decode, small_json(), 0);
  benchmark::RegisterBenchmark("frame_decode_64k", frame_decode, execute_json(), kLargePayload);
  benchmark::RegisterBenchmark("request_parse_hello", request_parse, hello_request());
  benchmark::RegisterBenchmark("request_parse_acquire", request_parse, acquire_request());
  benchmark::RegisterBenchmark("request_parse_execute_64k", request_parse, execute_request());
  benchmark::RegisterBenchmark("request_encode_acquire", request_encode, acquire_request());
  benchmark::RegisterBenchmark("reply_encode_acquire", reply_encode,
                               proto::ReplyBody(proto::AcquireReply{"sim0", 1}));
  benchmark::RegisterBenchmark("reply_read_acquire", reply_read_acquire);
  benchmark::RegisterBenchmark("arbiter_acquire_release_free", arbiter_acquire_release_free);
  benchmark::RegisterBenchmark("arbiter_nested_acquire_release", arbiter_nested_acquire_release);
  benchmark::RegisterBenchmark("arbiter_handoff", arbiter_handoff);
}

/// The console table as Google Benchmark prints it, then the `bench:` lines.
/// mean_ns is the CPU time per iteration: on a shared machine the wall time
/// (real_ns) also counts the time other processes had the CPU.
class BenchLineReporter final : public benchmark::ConsoleReporter {
 public:
  // N.B. colours only on a terminal, as Google Benchmark's own default.
  BenchLineReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) {
        failed_ = true;
        continue;
      }
      // One figure per benchmark: the mean of its repetitions when there
      // are several, else its one run.
      const bool figure = run.repetitions > 1
                              ? run.run_type == Run::RT_Aggregate && run.aggregate_name == "mean"
                              : run.run_type == Run::RT_Iteration;
      if (!figure)
        continue;
      const double unit = 1e9 / benchmark::GetTimeUnitMultiplier(run.time_unit);
      char line[256];
      std::snprintf(line, sizeof line,
                    "bench: {\"key\":\"micro_%s\",\"mean_ns\":%.1f,\"real_ns\":%.1f,\"n\":%lld}",
                    run.run_name.function_name.c_str(), run.GetAdjustedCPUTime() * unit,
                    run.GetAdjustedRealTime() * unit, static_cast<long long>(run.iterations));
      lines_.emplace_back(line);
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    for (const auto& line : lines_)
      GetOutputStream() << line << '\n';
    GetOutputStream().flush();
  }

  bool failed() const { return failed_; }

 private:
  std::vector<std::string> lines_;
  bool failed_ = false;
};

}  // namespace
}  // namespace discarbiter

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 2;
  discarbiter::register_all();
  discarbiter::BenchLineReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (reporter.failed()) {
    std::fprintf(stderr, "micro_bench: a benchmark failed (see its error above)\n");
    return 1;
  }
  return 0;
}
