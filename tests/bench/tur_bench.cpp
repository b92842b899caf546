// TEST UNIT READY to a real drive, timed through the service and by direct
// SG_IO, with the IPC floors beside it: the real-drive figure of the QEMU end
// to end (scripts/qemu-e2e runs it inside the guest, against QEMU's ATAPI
// drive; docs/performance.md).
//
//   discarbiter_tur_bench sgio DEVICE [COUNT]
//       TUR by SG_IO on DEVICE (/dev/sg0, the node the service sends through),
//       opened as the service opens it: O_RDWR | O_NONBLOCK | O_EXCL,
//       flock(LOCK_EX); the same sg_io_hdr (no data, 64 bytes of sense, TUR's
//       20 s timeout). Run it while the service is not running: the service
//       holds the node exclusively.
//   discarbiter_tur_bench service DRIVE [COUNT]
//       TUR through the service with the client library: one session, one
//       acquire, COUNT send_command_no_data calls timed one by one, release.
//   discarbiter_tur_bench service-simulated DRIVE [COUNT]
//       The same on a simulated drive of the same service: all of the
//       service's path but the device.
//   discarbiter_tur_bench round-trip [COUNT]
//       The IPC floor: 64 bytes to a forked echo process over an AF_UNIX
//       stream socket and back.
//   discarbiter_tur_bench round-trip-tur DEVICE [COUNT]
//       The floor of any arbiter in another process: the same round trip,
//       the echo process sending the TUR on DEVICE before it answers.
//   discarbiter_tur_bench round-trip-tur-thread DEVICE [COUNT]
//       The same with the TUR sent by a second thread of the echo process,
//       as the service's drive worker sends it: the cost of that hop.
//
// Each prints one `bench: {"key":…,"p50_us":…,"p99_us":…,"mean_us":…,"n":…}`
// line (the format tests/bench/report.py reads) and exits non-zero, naming the
// step, if anything fails or the drive does not answer GOOD.
#include <fcntl.h>
#include <scsi/sg.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "discarbiter/client.hpp"
#include "discarbiter/posix/error.hpp"
#include "discarbiter/posix/unique_fd.hpp"

namespace {

using discarbiter::posix::unique_fd;
using Clock = std::chrono::steady_clock;

constexpr std::array<std::uint8_t, 6> kTestUnitReady{};  // opcode 00h, all zero
constexpr unsigned kTurTimeoutMs = 20'000;  // the service's default for TUR (timeout_policy.cpp)
constexpr std::size_t kSenseBytes = 64;     // what the service gives SG_IO
constexpr std::size_t kMessageBytes = 64;   // the round trips' message, as A's raw floor
constexpr int kWarmUp = 20;
// N.B. a drive reports UNIT ATTENTION (power on, medium changed) to the first
// commands after boot: the warm-up retries until it answers GOOD.
constexpr int kMaxWarmUpAttempts = 200;

[[noreturn]] void fail(std::string_view step, std::error_code error) {
  throw std::runtime_error(discarbiter::posix::describe(step, error));
}

/// Opens a node as the service's sgio backend does (recorder_posix.cpp).
unique_fd open_like_the_service(const std::string& path) {
  unique_fd fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_EXCL | O_CLOEXEC));
  if (!fd)
    fail("open " + path, discarbiter::posix::last_error());
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0)
    fail("flock " + path, discarbiter::posix::last_error());
  return fd;
}

/// One TEST UNIT READY by SG_IO; true when the drive answered GOOD.
bool test_unit_ready(int fd) {
  auto cdb = kTestUnitReady;
  std::array<std::uint8_t, kSenseBytes> sense{};
  sg_io_hdr_t io{};
  io.interface_id = 'S';
  io.dxfer_direction = SG_DXFER_NONE;
  io.cmd_len = static_cast<unsigned char>(cdb.size());
  io.cmdp = cdb.data();
  io.mx_sb_len = static_cast<unsigned char>(sense.size());
  io.sbp = sense.data();
  io.timeout = kTurTimeoutMs;
  if (::ioctl(fd, SG_IO, &io) != 0)
    fail("SG_IO TEST UNIT READY", discarbiter::posix::last_error());
  return io.status == 0 && io.host_status == 0 && io.driver_status == 0;
}

void warm_up(const std::function<bool()>& command) {
  int good = 0;
  for (int attempt = 0; good < kWarmUp; ++attempt) {
    if (attempt == kMaxWarmUpAttempts)
      throw std::runtime_error("warm-up: the drive does not answer TEST UNIT READY with GOOD");
    good = command() ? good + 1 : 0;
  }
}

/// How many commands to time, and whose CPU time to account for them.
struct Run {
  int count = 1000;
  std::optional<pid_t> cpu_of;  // --cpu-of PID: the service's
};

/// A process's CPU time in the kernel's clock ticks (USER_HZ), from
/// /proc/PID/stat.
struct ProcessTicks {
  double user = 0;
  double kernel = 0;
};

ProcessTicks process_ticks(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(in, line) || line.rfind(')') == std::string::npos)
    throw std::runtime_error("cannot read /proc/" + pid + "/stat");
  // N.B. after the ")" that ends the command name: state is field 3, utime 14, stime 15.
  std::istringstream fields(line.substr(line.rfind(')') + 2));
  std::string field;
  ProcessTicks t;
  for (int n = 3; n <= 15 && fields >> field; ++n) {
    if (n == 14)
      t.user = std::stod(field);
    if (n == 15)
      t.kernel = std::stod(field);
  }
  return t;
}

/// The guest's CPU time (/proc/stat), the process asked for's and this one's.
struct CpuTicks {
  double busy = 0;  // every state but idle and iowait
  double idle = 0;
  ProcessTicks process;
  ProcessTicks self;
};

CpuTicks cpu_ticks(pid_t process) {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;  // "cpu": all CPUs
  CpuTicks t;
  double value = 0;
  for (int n = 0; n < 8 && in >> value; ++n)  // user nice system idle iowait irq softirq steal
    (n == 3 || n == 4 ? t.idle : t.busy) += value;
  t.process = process_ticks(std::to_string(process));
  t.self = process_ticks("self");
  return t;
}

/// Prints where the time of `count` commands went, per command: the wall
/// time; the CPU time of the process asked for and of this one, each in user
/// space and in the kernel; the rest of the guest's busy time (interrupts,
/// the echo processes) and its idle time. Ticks are sampled: a figure is
/// only as good as count is large.
void print_cpu(pid_t pid, const CpuTicks& before, const CpuTicks& after, Clock::duration wall,
               int count) {
  const double us_per_tick = 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK));
  const auto us = [&](double ticks) { return ticks * us_per_tick / static_cast<double>(count); };
  const ProcessTicks process{after.process.user - before.process.user,
                             after.process.kernel - before.process.kernel};
  const ProcessTicks self{after.self.user - before.self.user,
                          after.self.kernel - before.self.kernel};
  const double rest =
      after.busy - before.busy - process.user - process.kernel - self.user - self.kernel;
  std::printf(
      "cpu per command (us): wall %.1f; pid %d: user %.1f, kernel %.1f; this client: user %.1f, "
      "kernel %.1f; the rest of the guest %.1f; idle %.1f\n",
      std::chrono::duration<double, std::micro>(wall).count() / count, static_cast<int>(pid),
      us(process.user), us(process.kernel), us(self.user), us(self.kernel), us(rest),
      us(after.idle - before.idle));
}

/// Times run.count calls of command after a warm-up; each must return true
/// (GOOD).
std::vector<double> time_each(const Run& run, const std::function<bool()>& command) {
  warm_up(command);
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(run.count));
  const auto before = run.cpu_of ? cpu_ticks(*run.cpu_of) : CpuTicks{};
  const auto began = Clock::now();
  for (int i = 0; i < run.count; ++i) {
    const auto start = Clock::now();
    const bool good = command();
    const auto stop = Clock::now();
    if (!good)
      throw std::runtime_error("command " + std::to_string(i) + " did not answer GOOD");
    us.push_back(std::chrono::duration<double, std::micro>(stop - start).count());
  }
  if (run.cpu_of)
    print_cpu(*run.cpu_of, before, cpu_ticks(*run.cpu_of), Clock::now() - began, run.count);
  return us;
}

void print_figure(std::string_view key, std::vector<double> us) {
  std::ranges::sort(us);
  const auto at = [&](double q) {
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(us.size())));
    return us[std::clamp<std::size_t>(rank, 1, us.size()) - 1];
  };
  double sum = 0;
  for (double v : us)
    sum += v;
  std::printf(
      "bench: {\"key\":\"%.*s\",\"p50_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f,\"n\":%zu}\n",
      static_cast<int>(key.size()), key.data(), at(0.50), at(0.99),
      sum / static_cast<double>(us.size()), us.size());
  std::fflush(stdout);
}

void exchange(int fd, std::array<char, kMessageBytes>& message, std::string_view who) {
  if (::write(fd, message.data(), message.size()) != static_cast<ssize_t>(message.size()))
    fail(std::string(who) + ": write", discarbiter::posix::last_error());
  std::size_t got = 0;
  while (got < message.size()) {
    const auto n = ::read(fd, message.data() + got, message.size() - got);
    if (n <= 0)
      fail(std::string(who) + ": read", n == 0 ? std::make_error_code(std::errc::broken_pipe)
                                               : discarbiter::posix::last_error());
    got += static_cast<std::size_t>(n);
  }
}

[[noreturn]] void echo_failed(const std::exception& e) {
  std::fprintf(stderr, "discarbiter_tur_bench: the echo process: %s\n", e.what());
  ::_exit(1);
}

/// A thread that sends the TUR when asked and says when it is done: the hop
/// the service's drive worker adds (a wake of another thread, and one back).
class TurThread {
 public:
  explicit TurThread(int device) : device_(device), thread_([this] { run(); }) {}
  TurThread(const TurThread&) = delete;
  TurThread& operator=(const TurThread&) = delete;
  ~TurThread() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  bool send_test_unit_ready() {
    std::unique_lock lock(mutex_);
    asked_ = true;
    changed_.notify_all();
    changed_.wait(lock, [this] { return !asked_; });
    return good_;
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] { return asked_ || stopping_; });
      if (stopping_)
        return;
      lock.unlock();
      bool good = false;
      try {
        good = test_unit_ready(device_);
      } catch (const std::exception& e) {
        echo_failed(e);
      }
      lock.lock();
      good_ = good;
      asked_ = false;
      changed_.notify_all();
    }
  }

  int device_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool asked_ = false;
  bool good_ = false;
  bool stopping_ = false;
  std::thread thread_;  // N.B. last: it starts in the constructor and uses the members above
};

enum class Echo { plain, tur, tur_on_a_thread };

/// The echo process: answers each message, after a TUR on `device` as `how`
/// says. Ends at EOF.
[[noreturn]] void echo(int fd, int device, Echo how) try {
  std::optional<TurThread> worker;
  if (how == Echo::tur_on_a_thread)
    worker.emplace(device);
  std::array<char, kMessageBytes> message{};
  for (;;) {
    std::size_t got = 0;
    while (got < message.size()) {
      const auto n = ::read(fd, message.data() + got, message.size() - got);
      if (n <= 0) {
        worker.reset();
        ::_exit(n == 0 && got == 0 ? 0 : 1);
      }
      got += static_cast<std::size_t>(n);
    }
    message[0] = static_cast<char>(how == Echo::plain ? true
                                   : how == Echo::tur ? test_unit_ready(device)
                                                      : worker->send_test_unit_ready());
    if (::write(fd, message.data(), message.size()) != static_cast<ssize_t>(message.size()))
      ::_exit(1);
  }
} catch (const std::exception& e) {
  echo_failed(e);
}

/// A round trip to a forked echo process, which sends a TUR on device_path
/// (opened as the service opens it) for each message unless `how` is plain.
std::vector<double> round_trips(const Run& run, Echo how, const std::string& device_path) {
  unique_fd device;
  if (how != Echo::plain)
    device = open_like_the_service(device_path);
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    fail("socketpair", discarbiter::posix::last_error());
  unique_fd mine(pair[0]);
  unique_fd theirs(pair[1]);
  const pid_t child = ::fork();
  if (child < 0)
    fail("fork", discarbiter::posix::last_error());
  if (child == 0) {
    mine.reset();
    echo(theirs.get(), device.get(), how);
  }
  theirs.reset();
  device.reset();  // N.B. the child's copy is the one in use
  std::array<char, kMessageBytes> message{};
  auto us = time_each(run, [&] {
    message[0] = 0;
    exchange(mine.get(), message, "round trip");
    return message[0] == 1;
  });
  mine.reset();
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error("the echo process did not end cleanly");
  return us;
}

std::vector<double> through_the_service(const Run& run, const std::string& drive) {
  discarbiter::Client client({.client_name = "discarbiter_tur_bench"});
  auto lock = client.acquire(drive);
  auto us = time_each(run, [&] {
    const auto result = client.send_command_no_data(drive, kTestUnitReady);
    return result.code == discarbiter::errc::ok && result.scsi_status == 0;
  });
  lock.release();
  return us;
}

struct Mode {
  std::string_view name;
  std::string_view key;     // the figure it prints
  std::string_view target;  // what its argument names; empty: none
  std::vector<double> (*measure)(const Run& run, const std::string& target);
};

const std::array kModes{
    Mode{"sgio", "qemu_tur_sgio", "DEVICE",
         [](const Run& run, const std::string& device) {
           const auto fd = open_like_the_service(device);
           return time_each(run, [&] { return test_unit_ready(fd.get()); });
         }},
    Mode{"service", "qemu_tur_service", "DRIVE", through_the_service},
    Mode{"service-simulated", "qemu_tur_service_simulated", "DRIVE", through_the_service},
    Mode{"round-trip", "qemu_raw_round_trip", "",
         [](const Run& run, const std::string&) { return round_trips(run, Echo::plain, {}); }},
    Mode{"round-trip-tur", "qemu_raw_round_trip_tur", "DEVICE",
         [](const Run& run, const std::string& device) {
           return round_trips(run, Echo::tur, device);
         }},
    Mode{"round-trip-tur-thread", "qemu_raw_round_trip_tur_thread", "DEVICE",
         [](const Run& run, const std::string& device) {
           return round_trips(run, Echo::tur_on_a_thread, device);
         }},
};

int usage() {
  for (const auto& mode : kModes) {
    std::fprintf(stderr, "usage: discarbiter_tur_bench %.*s%s%.*s [COUNT [--cpu-of PID]]\n",
                 static_cast<int>(mode.name.size()), mode.name.data(),
                 mode.target.empty() ? "" : " ", static_cast<int>(mode.target.size()),
                 mode.target.data());
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto mode = args.empty() ? kModes.end() : std::ranges::find(kModes, args[0], &Mode::name);
  if (mode == kModes.end())
    return usage();
  const std::size_t count_at = mode->target.empty() ? 1 : 2;
  Run run;
  if (args.size() > count_at)
    run.count = std::atoi(args[count_at].c_str());
  if (args.size() == count_at + 3 && args[count_at + 1] == "--cpu-of")
    run.cpu_of = std::atoi(args[count_at + 2].c_str());
  else if (args.size() != count_at && args.size() != count_at + 1)
    return usage();
  if (run.count < 1 || (run.cpu_of && *run.cpu_of < 1))
    return usage();
  try {
    print_figure(mode->key, mode->measure(run, count_at == 2 ? args[1] : std::string()));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "discarbiter_tur_bench %s: %s\n", args[0].c_str(), e.what());
    return 1;
  }
  return 0;
}
