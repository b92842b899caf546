// The pcsc-lite peer: the same figures as the lock path's, taken from a
// cross-process exclusive-access daemon of another field (pcscd), so that
// DiscArbiter's numbers have a neighbour measured on the same machine in the
// same run. Run by run-peer, which starts a private pcscd, vpcd's reader and
// a virtual card; this program only talks PC/SC.
//
//   pcsc_peer wait-reader SECONDS   pcscd answers and lists kReader
//   pcsc_peer wait-card SECONDS     a card is present in kReader
//   pcsc_peer bench [--pairs N] [--handoffs N]
//
// bench prints one `bench: {…}` line per figure (tests/bench/report.py):
//   pcsc_transaction_pair  SCardBeginTransaction + SCardEndTransaction on a
//                          connected card, nobody else on it;
//   pcsc_handoff           the holder's SCardEndTransaction called -> the
//                          waiter's SCardBeginTransaction returned, the waiter
//                          a second process blocked in its Begin. pcsc-lite
//                          has no queue: a refused Begin is retried after
//                          sleeps of PCSCLITE_LOCK_POLL_RATE (100 ms), so this
//                          figure is that polling, not the IPC (about 200 ms
//                          with pcsc-lite 1.9.9 and the 5 ms hold below).
#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// vpcd's first slot (/etc/reader.conf.d/vpcd, FRIENDLYNAME "Virtual PCD").
constexpr std::string_view kReader = "Virtual PCD 00 00";
// How often the wait-* commands look again: the state they wait for has no
// notification before pcscd answers at all.
constexpr auto kPollInterval = 20ms;
// How long the holder keeps the card after the waiter says it is about to
// call Begin, so that the waiter's Begin reaches pcscd while the card is
// held (a waiter queued before the release, as in DiscArbiter's figure).
constexpr auto kHandoffHold = 5ms;

[[noreturn]] void fail(const char* step, LONG rv) {
  std::fprintf(stderr, "pcsc_peer: %s: %s (0x%lx)\n", step, pcsc_stringify_error(rv),
               static_cast<unsigned long>(rv));
  std::exit(1);
}

void check(const char* step, LONG rv) {
  if (rv != SCARD_S_SUCCESS)
    fail(step, rv);
}

/// The readers pcscd lists now (empty while it has none or does not answer).
std::vector<std::string> list_readers(SCARDCONTEXT context) {
  DWORD size = 0;
  if (SCardListReaders(context, nullptr, nullptr, &size) != SCARD_S_SUCCESS)
    return {};
  std::string buffer(size, '\0');
  if (SCardListReaders(context, nullptr, buffer.data(), &size) != SCARD_S_SUCCESS)
    return {};
  std::vector<std::string> out;
  for (const char* p = buffer.c_str(); *p != '\0'; p += std::strlen(p) + 1)
    out.emplace_back(p);
  return out;
}

/// A context, established as soon as pcscd answers, before the deadline.
SCARDCONTEXT establish_context(Clock::time_point deadline) {
  for (;;) {
    SCARDCONTEXT context = 0;
    const LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &context);
    if (rv == SCARD_S_SUCCESS)
      return context;
    if (Clock::now() >= deadline)
      fail("SCardEstablishContext (is pcscd running?)", rv);
    std::this_thread::sleep_for(kPollInterval);
  }
}

int wait_reader(Clock::time_point deadline) {
  const SCARDCONTEXT context = establish_context(deadline);
  for (;;) {
    if (std::ranges::count(list_readers(context), std::string(kReader)) > 0)
      break;
    if (Clock::now() >= deadline) {
      std::fprintf(stderr, "pcsc_peer: no reader \"%s\" listed by pcscd\n", kReader.data());
      return 1;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  SCardReleaseContext(context);
  return 0;
}

int wait_card(Clock::time_point deadline) {
  const SCARDCONTEXT context = establish_context(deadline);
  SCARD_READERSTATE state{};
  const std::string reader(kReader);
  state.szReader = reader.c_str();
  state.dwCurrentState = SCARD_STATE_UNAWARE;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const LONG rv =
        SCardGetStatusChange(context, static_cast<DWORD>(std::max(left.count(), 0L)), &state, 1);
    if (rv == SCARD_S_SUCCESS && (state.dwEventState & SCARD_STATE_PRESENT) != 0)
      break;
    if (rv != SCARD_S_SUCCESS && rv != SCARD_E_TIMEOUT)
      fail("SCardGetStatusChange", rv);
    if (Clock::now() >= deadline) {
      std::fprintf(stderr, "pcsc_peer: no card in \"%s\" (reader state 0x%lx)\n", reader.c_str(),
                   static_cast<unsigned long>(state.dwEventState));
      return 1;
    }
    state.dwCurrentState = state.dwEventState;
  }
  SCardReleaseContext(context);
  return 0;
}

/// A connection to the card, shared (transactions are what excludes).
struct Card {
  Card() {
    check("SCardEstablishContext",
          SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &context));
    DWORD protocol = 0;
    check("SCardConnect", SCardConnect(context, std::string(kReader).c_str(), SCARD_SHARE_SHARED,
                                       SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &handle, &protocol));
  }
  ~Card() {
    SCardDisconnect(handle, SCARD_LEAVE_CARD);
    SCardReleaseContext(context);
  }
  Card(const Card&) = delete;
  Card& operator=(const Card&) = delete;

  void begin() const { check("SCardBeginTransaction", SCardBeginTransaction(handle)); }
  void end() const { check("SCardEndTransaction", SCardEndTransaction(handle, SCARD_LEAVE_CARD)); }

  SCARDCONTEXT context = 0;
  SCARDHANDLE handle = 0;
};

double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

void print_latency(const char* key, std::vector<double> samples) {
  std::ranges::sort(samples);
  const std::size_t n = samples.size();
  double sum = 0;
  for (double s : samples)
    sum += s;
  std::printf(
      "bench: {\"key\":\"%s\",\"p50_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f,\"n\":%zu}\n", key,
      samples[n / 2], samples[std::min(n - 1, n * 99 / 100)], sum / static_cast<double>(n), n);
  std::fflush(stdout);
}

void transaction_pairs(int pairs) {
  Card card;
  for (int i = 0; i < std::max(pairs / 10, 10); ++i) {  // warm-up
    card.begin();
    card.end();
  }
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(pairs));
  for (int i = 0; i < pairs; ++i) {
    const auto t0 = Clock::now();
    card.begin();
    card.end();
    samples.push_back(micros(Clock::now() - t0));
  }
  print_latency("pcsc_transaction_pair", std::move(samples));
}

void write_all(int fd, const void* data, std::size_t size) {
  if (write(fd, data, size) != static_cast<ssize_t>(size)) {
    std::perror("pcsc_peer: write to the other process");
    std::exit(1);
  }
}

void read_all(int fd, void* data, std::size_t size) {
  if (read(fd, data, size) != static_cast<ssize_t>(size)) {
    std::fprintf(stderr, "pcsc_peer: the other process went away\n");
    std::exit(1);
  }
}

/// The waiter (a child process): says it is connected, then per round says
/// it is about to call Begin, calls it, and sends back when it returned.
[[noreturn]] void waiter(int rounds, int from_holder, int to_holder) {
  Card card;
  const char connected = 'c';
  write_all(to_holder, &connected, 1);
  for (int i = 0; i < rounds; ++i) {
    char go = 0;
    read_all(from_holder, &go, 1);
    write_all(to_holder, &go, 1);
    card.begin();
    const auto granted = Clock::now().time_since_epoch().count();
    card.end();
    write_all(to_holder, &granted, sizeof granted);
  }
  std::exit(0);
}

void handoffs(int rounds) {
  int to_waiter[2], from_waiter[2];
  if (pipe(to_waiter) != 0 || pipe(from_waiter) != 0) {
    std::perror("pcsc_peer: pipe");
    std::exit(1);
  }
  std::fflush(stdout);
  const pid_t child = fork();
  if (child < 0) {
    std::perror("pcsc_peer: fork");
    std::exit(1);
  }
  if (child == 0)
    waiter(rounds, to_waiter[0], from_waiter[1]);  // N.B. its own PC/SC context, after fork
  Card card;
  // N.B. pcscd holds an SCardConnect back while the card is in a
  // transaction: the waiter connects before the first Begin.
  char connected = 0;
  read_all(from_waiter[0], &connected, 1);
  std::vector<double> samples;
  for (int i = 0; i < rounds; ++i) {
    card.begin();
    const char go = 'g';
    write_all(to_waiter[1], &go, 1);
    char ready = 0;
    read_all(from_waiter[0], &ready, 1);
    std::this_thread::sleep_for(kHandoffHold);
    const auto released = Clock::now();
    card.end();
    Clock::rep granted = 0;
    read_all(from_waiter[0], &granted, sizeof granted);
    samples.push_back(micros(Clock::duration(granted) - released.time_since_epoch()));
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "pcsc_peer: the waiter process failed\n");
    std::exit(1);
  }
  print_latency("pcsc_handoff", std::move(samples));
}

int usage() {
  std::fprintf(stderr,
               "usage: pcsc_peer wait-reader SECONDS | wait-card SECONDS |"
               " bench [--pairs N] [--handoffs N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.size() == 2 && (args[0] == "wait-reader" || args[0] == "wait-card")) {
    const auto deadline = Clock::now() + std::chrono::seconds(std::atoi(argv[2]));
    return args[0] == "wait-reader" ? wait_reader(deadline) : wait_card(deadline);
  }
  if (args.empty() || args[0] != "bench")
    return usage();
  int pairs = 20000, rounds = 20;
  for (std::size_t i = 1; i + 1 < args.size(); i += 2) {
    const int value = std::atoi(argv[i + 2]);
    if (value <= 0)
      return usage();
    if (args[i] == "--pairs")
      pairs = value;
    else if (args[i] == "--handoffs")
      rounds = value;
    else
      return usage();
  }
  if (args.size() % 2 == 0)
    return usage();
  transaction_pairs(pairs);
  handoffs(rounds);
  return 0;
}
