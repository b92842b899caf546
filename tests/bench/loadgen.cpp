// The load generator (docs/performance.md): DiscArbiter's figures measured
// through the client library (status also on the raw protocol), each beside
// its floor measured in the same run.
//
//   discarbiter_loadgen [--smoke] [--iterations N] [--seconds S] [--sessions N]
//                       [--only GROUP,...] [--service PATH]
//
// It starts its own discarbiterd (2 simulated drives, a temporary endpoint,
// a configuration with the session limits 1,000 idle sessions need) and stops
// it on every way out; every process it starts dies with it
// (PR_SET_PDEATHSIG, and a handler for SIGINT/SIGTERM/SIGHUP). Pinning is the
// caller's: under `taskset -c 0` the service and every child inherit the
// tool's CPU (scripts/dev bench).
//
// Each figure is one line on stdout, `bench: {"key":...}`: latencies carry
// p50_us, p99_us, mean_us and n; throughputs gbps (10^9 B/s), bytes and n.
// tests/bench/report.py reads them and lists the keys.
//
// Nothing here sleeps to wait for an event: a child's readiness is a byte
// on a pipe, a waiter's arrival in the queue is asked of the service, the
// service's start is its "listening on" log line (inotify), every wait has a
// deadline. The one sleep is the idle window in which wake-ups are counted.

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "discarbiter/client.hpp"
#include "discarbiter/posix/unique_fd.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using discarbiter::posix::unique_fd;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::string_view kDrive = "sim0";
constexpr std::size_t kSmallMessage = 64;  // the round trip's and the ack's size
constexpr std::uint32_t kBlock = 2048;     // the simulated disc's block

[[noreturn]] void fail_errno(std::string_view step) {
  throw std::system_error(errno, std::generic_category(), std::string(step));
}

class Deadline {
 public:
  explicit Deadline(Clock::duration d) : end_(Clock::now() + d) {}
  bool passed() const { return Clock::now() >= end_; }
  int ms_left() const {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(end_ - Clock::now()).count();
    return static_cast<int>(std::clamp<std::int64_t>(left, 0, 60'000));
  }

 private:
  Clock::time_point end_;
};

double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// ---- figures ------------------------------------------------------------------

void emit(const std::string& json, std::string_view prefix = "bench") {
  fmt::print("{}: {}\n", prefix, json);
  std::fflush(stdout);
}

double percentile(const std::vector<double>& sorted, double p) {
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

/// The median of the last `n` samples (those after the warm-up).
double median_of_last(const std::vector<double>& samples, std::size_t n) {
  std::vector<double> last(samples.end() - static_cast<std::ptrdiff_t>(std::min(n, samples.size())),
                           samples.end());
  std::sort(last.begin(), last.end());
  return last.empty() ? 0.0 : percentile(last, 0.50);
}

/// `extra`: more JSON members, each starting with a comma.
void emit_latency(std::string_view key, std::vector<double> us, const std::string& extra = {}) {
  if (us.empty())
    throw std::runtime_error(fmt::format("{}: no samples", key));
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double v : us)
    sum += v;
  emit(fmt::format(R"({{"key":"{}","p50_us":{:.2f},"p99_us":{:.2f},"mean_us":{:.2f},"n":{}{}}})",
                   key, percentile(us, 0.50), percentile(us, 0.99),
                   sum / static_cast<double>(us.size()), us.size(), extra));
}

void emit_throughput(std::string_view key, std::uint64_t bytes, Clock::duration elapsed,
                     std::uint64_t n) {
  const double seconds = std::chrono::duration<double>(elapsed).count();
  emit(fmt::format(R"({{"key":"{}","gbps":{:.3f},"bytes":{},"seconds":{:.3f},"n":{}}})", key,
                   static_cast<double>(bytes) / seconds / 1e9, bytes, seconds, n));
}

/// Runs `once` warm-up times untimed, then `n` times timed; `once` returns
/// the interval it measured.
std::vector<double> sample(std::size_t n, const std::function<Clock::duration()>& once) {
  const std::size_t warm_up = std::max<std::size_t>(3, n / 20);
  for (std::size_t i = 0; i < warm_up; ++i)
    once();
  std::vector<double> us;
  us.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    us.push_back(micros(once()));
  return us;
}

/// Repeats `once` (which moves `bytes_each`) for `seconds` after a warm-up.
void measure_throughput(std::string_view key, std::size_t bytes_each, double seconds,
                        const std::function<void()>& once) {
  for (int i = 0; i < 8; ++i)
    once();
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::uint64_t n = 0;
  auto now = start;
  do {
    once();
    ++n;
    now = Clock::now();
  } while (now < end || n < 16);
  emit_throughput(key, n * bytes_each, now - start, n);
}

// ---- raw I/O (also used by forked children: system calls only) -----------------

/// Calls `step(p, n)` (a read or a send) until `size` bytes moved, resuming
/// after EINTR and short transfers; false at end of file or on an error.
template <typename Byte, typename Step>
bool transfer(Byte* p, std::size_t size, Step step) {
  while (size > 0) {
    const ssize_t r = step(p, size);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return false;
    p += r;
    size -= static_cast<std::size_t>(r);
  }
  return true;
}

bool read_exact(int fd, void* data, std::size_t size) {
  return transfer(static_cast<char*>(data), size,
                  [fd](char* p, std::size_t n) { return ::read(fd, p, n); });
}

bool write_all(int fd, const void* data, std::size_t size) {
  return transfer(static_cast<const char*>(data), size,
                  [fd](const char* p, std::size_t n) { return ::send(fd, p, n, MSG_NOSIGNAL); });
}

/// Reads and writes on `fd` fail (EAGAIN) after 20 s without progress: a
/// peer that hangs ends the run with an error instead of blocking it.
void set_io_deadline(int fd) {
  const timeval limit{.tv_sec = 20, .tv_usec = 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit) != 0)
    fail_errno("setsockopt SO_RCVTIMEO/SO_SNDTIMEO");
}

std::pair<unique_fd, unique_fd> socket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    fail_errno("socketpair");
  std::pair<unique_fd, unique_fd> ends{unique_fd(sv[0]), unique_fd(sv[1])};
  set_io_deadline(sv[0]);
  set_io_deadline(sv[1]);
  return ends;
}

std::pair<unique_fd, unique_fd> pipe_pair() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0)
    fail_errno("pipe2");
  return {unique_fd(p[0]), unique_fd(p[1])};
}

// ---- child processes -----------------------------------------------------------

// Every live child, for the signal handler: it kills them before the tool
// dies of SIGINT/SIGTERM/SIGHUP (PR_SET_PDEATHSIG covers SIGKILL of the tool,
// which leaves its temporary directory behind).
std::array<std::atomic<pid_t>, 64> g_children{};

// Every temporary directory, for the same handler, which removes them.
struct TempDirSlot {
  std::atomic<bool> used{false};
  char path[64] = {};
};
std::array<TempDirSlot, 4> g_temp_dirs;

/// Empties and removes `path` with system calls only (a signal handler's).
void remove_flat_dir(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return;
  alignas(dirent64) char buffer[4096];
  ssize_t n;
  while ((n = ::getdents64(fd, buffer, sizeof buffer)) > 0) {
    for (ssize_t at = 0; at < n;) {
      const auto* entry = reinterpret_cast<const dirent64*>(buffer + at);
      if (entry->d_name[0] != '.')
        ::unlinkat(fd, entry->d_name, 0);
      at += entry->d_reclen;
    }
  }
  ::close(fd);
  ::rmdir(path);
}

void on_fatal_signal(int sig) {
  for (auto& slot : g_children) {
    const pid_t pid = slot.load();
    if (pid > 0)
      ::kill(pid, SIGKILL);
  }
  for (auto& dir : g_temp_dirs) {
    if (dir.used.load())
      remove_flat_dir(dir.path);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    ::sigaction(sig, &sa, nullptr);
}

/// A child process, killed (SIGKILL) and reaped by the destructor unless
/// reaped before. N.B. children are started from the main thread only:
/// PR_SET_PDEATHSIG fires when the thread that forked exits.
class Child {
 public:
  /// fork()s; the child runs `body` (system calls only: the parent may have
  /// threads) and exits.
  static Child fork_run(const std::function<void()>& body) {
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0)
      fail_errno("fork");
    if (pid == 0) {
      in_child(parent);
      body();
      ::_exit(0);
    }
    return Child(pid);
  }

  /// fork() + exec; `fds`: (parent's fd, fd number in the child); stdout and,
  /// unless `stderr_fd` is given, stderr go to /dev/null.
  static Child spawn(const std::vector<std::string>& args,
                     const std::vector<std::pair<int, int>>& fds, int stderr_fd = -1) {
    std::vector<char*> argv;
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    unique_fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!null)
      fail_errno("open /dev/null");
    return fork_run([&] {
      ::dup2(null.get(), 0);
      ::dup2(null.get(), 1);
      ::dup2(stderr_fd >= 0 ? stderr_fd : null.get(), 2);
      for (const auto& [from, to] : fds) {
        if (from == to)
          ::fcntl(to, F_SETFD, 0);
        else
          ::dup2(from, to);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    });
  }

  Child(Child&& other) noexcept
      : pid_(std::exchange(other.pid_, -1)),
        pidfd_(std::move(other.pidfd_)),
        slot_(std::exchange(other.slot_, nullptr)) {}
  Child& operator=(Child&&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      reap();
    }
  }

  pid_t pid() const { return pid_; }
  /// Readable once the child has exited.
  int pidfd() const { return pidfd_.get(); }
  void kill(int sig) const { ::kill(pid_, sig); }

  /// Waits for the exit until the deadline; false if it has not exited.
  bool wait(const Deadline& deadline) {
    pollfd p{pidfd_.get(), POLLIN, 0};
    while (::poll(&p, 1, deadline.ms_left()) < 0 && errno == EINTR) {
    }
    if (!(p.revents & POLLIN))
      return false;
    reap();
    return true;
  }
  /// Asks the child to stop (SIGTERM), then kills it after `grace`.
  void stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0)
      return;
    kill(SIGTERM);
    if (!wait(Deadline(grace))) {
      kill(SIGKILL);
      reap();
    }
  }

 private:
  explicit Child(pid_t pid) : pid_(pid) {
    pidfd_ = unique_fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      fail_errno("pidfd_open");
    }
    for (auto& slot : g_children) {
      pid_t empty = 0;
      if (slot.compare_exchange_strong(empty, pid)) {
        slot_ = &slot;
        break;
      }
    }
  }

  static void in_child(pid_t parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)  // the tool died before the prctl
      ::_exit(1);
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
      ::sigaction(sig, &sa, nullptr);
  }

  void reap() {
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    if (slot_ != nullptr)
      slot_->store(0);
    slot_ = nullptr;
    pid_ = -1;
  }

  pid_t pid_;
  unique_fd pidfd_;
  std::atomic<pid_t>* slot_ = nullptr;
};

/// Waits for one byte on `fd` (a child's "ready"); fails if the child exits
/// first or the deadline passes.
void wait_ready(int fd, const Child& child, const Deadline& deadline, std::string_view what) {
  pollfd p[2] = {{fd, POLLIN, 0}, {child.pidfd(), POLLIN, 0}};
  while (true) {
    const int r = ::poll(p, 2, deadline.ms_left());
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      fail_errno("poll");
    if (p[0].revents != 0) {
      char c = 0;
      if (::read(fd, &c, 1) == 1 && c == 'r')
        return;
      throw std::runtime_error(fmt::format("{}: the child failed before it was ready", what));
    }
    if (p[1].revents != 0)
      throw std::runtime_error(fmt::format("{}: the child exited before it was ready", what));
    if (deadline.passed())
      throw std::runtime_error(fmt::format("{}: the child was not ready in time", what));
  }
}

// ---- the service -----------------------------------------------------------------

std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string last_lines(const std::string& text, std::size_t count) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    lines.push_back(std::move(line));
  std::string tail;
  for (std::size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i)
    tail += lines[i] + '\n';
  return tail.empty() ? "(empty)\n" : tail;
}

/// A directory of its own (mkdtemp, mode 0700), removed with its contents by
/// the destructor.
class TempDir {
 public:
  TempDir() {
    for (auto& slot : g_temp_dirs) {
      if (!slot.used.load()) {
        slot_ = &slot;
        break;
      }
    }
    if (slot_ == nullptr)
      throw std::logic_error("too many temporary directories at once");
    std::strcpy(slot_->path, "/tmp/discarbiter-bench-XXXXXX");
    if (::mkdtemp(slot_->path) == nullptr)
      fail_errno("mkdtemp");
    path_ = slot_->path;
    slot_->used = true;  // N.B. once the name is complete: the handler reads it
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    slot_->used = false;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  TempDirSlot* slot_ = nullptr;
  fs::path path_;
};

/// discarbiterd on 2 simulated drives in a temporary directory; stopped
/// (SIGTERM, then SIGKILL) by the destructor, or killed if its start fails.
class Service {
 public:
  explicit Service(const std::string& binary)
      : endpoint_((dir_.path() / "discarbiter.sock").string()),
        log_(dir_.path() / "discarbiterd.log") {
    const auto config = dir_.path() / "discarbiter.json";
    // N.B. the session limits let 1,000 idle sessions of one user in (the
    // defaults allow 32 per user); max_transfer_bytes is the default 1 MiB,
    // which the simulated drive also allows, so the 1 MiB figures need
    // nothing more.
    std::ofstream(config) << R"({"limits": {"max_sessions": 4096, "max_sessions_per_user": 4096,
  "admin_reserved_sessions": 8, "max_transfer_bytes": 1048576}})"
                          << '\n';
    unique_fd log(::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!log)
      fail_errno("open the service's log");
    // Watched before the start, so the line cannot slip by unseen.
    unique_fd watch(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!watch || ::inotify_add_watch(watch.get(), log_.c_str(), IN_MODIFY) < 0)
      fail_errno("inotify");
    child_.emplace(Child::spawn({binary, "run", "--simulate", "2", "--endpoint", endpoint_,
                                 "--no-discover", "--config", config.string()},
                                {}, log.get()));
    const Deadline deadline(15s);
    while (file_text(log_).find("listening on") == std::string::npos) {
      pollfd p[2] = {{watch.get(), POLLIN, 0}, {child_->pidfd(), POLLIN, 0}};
      if (::poll(p, 2, deadline.ms_left()) < 0 && errno != EINTR)
        fail_errno("poll");
      if (p[1].revents != 0 || deadline.passed())
        throw std::runtime_error(
            fmt::format("discarbiterd did not start ({}); its log ends:\n{}",
                        p[1].revents != 0 ? "it exited" : "no 'listening on' within 15 s",
                        last_lines(file_text(log_), 20)));
      char buffer[4096];
      while (::read(watch.get(), buffer, sizeof buffer) > 0) {
      }
    }
  }
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  ~Service() {
    if (child_)
      child_->stop(10s);
  }

  const std::string& endpoint() const { return endpoint_; }
  pid_t pid() const { return child_->pid(); }
  std::string log_tail() const { return last_lines(file_text(log_), 20); }

 private:
  TempDir dir_;  // N.B. first: destroyed after the service has stopped
  std::string endpoint_;
  fs::path log_;
  std::optional<Child> child_;
};

/// A /proc/PID/status field in kB (VmRSS) or a count.
std::uint64_t proc_status_field(const fs::path& status, std::string_view field) {
  std::ifstream in(status);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':')
      return std::strtoull(line.c_str() + field.size() + 1, nullptr, 10);
  }
  throw std::runtime_error(fmt::format("{}: no {}", status.string(), field));
}

std::uint64_t rss_kib(pid_t pid) {
  return proc_status_field(fs::path("/proc") / std::to_string(pid) / "status", "VmRSS");
}

/// Voluntary and involuntary context switches of each thread of `pid`, by
/// "name/tid": each is a wake-up (or a preemption) of the service.
std::map<std::string, std::uint64_t> context_switches(pid_t pid) {
  std::map<std::string, std::uint64_t> by_thread;
  for (const auto& task :
       fs::directory_iterator(fs::path("/proc") / std::to_string(pid) / "task")) {
    try {
      std::string name;
      std::ifstream comm(task.path() / "comm");
      std::getline(comm, name);
      by_thread[name + "/" + task.path().filename().string()] +=
          proc_status_field(task.path() / "status", "voluntary_ctxt_switches") +
          proc_status_field(task.path() / "status", "nonvoluntary_ctxt_switches");
    } catch (const std::exception&) {
      // a thread that ended meanwhile
    }
  }
  return by_thread;
}

/// Until every thread of `pid` sleeps (state S in /proc/PID/task/*/stat)
/// twice in a row with no context switch between, yielding the CPU between
/// looks (pinned, the service shares it); false if the deadline came first.
bool wait_until_asleep(pid_t pid, const Deadline& deadline) {
  const auto all_asleep = [pid] {
    for (const auto& task :
         fs::directory_iterator(fs::path("/proc") / std::to_string(pid) / "task")) {
      const std::string stat = file_text(task.path() / "stat");
      const auto name_end = stat.rfind(')');
      if (name_end == std::string::npos || name_end + 2 >= stat.size() || stat[name_end + 2] != 'S')
        return false;
    }
    return true;
  };
  auto last = context_switches(pid);
  while (!deadline.passed()) {
    ::sched_yield();
    const auto now = context_switches(pid);
    if (all_asleep() && now == last)
      return true;
    last = now;
  }
  return false;
}

// ---- client-side helpers --------------------------------------------------------

discarbiter::ConnectOptions connect_options(const std::string& endpoint, std::string name) {
  return {.endpoint = endpoint, .client_name = std::move(name), .timeout = 20s};
}

/// Until the service counts `sessions` clients (closed sessions are ended
/// asynchronously), asking the status document; with a deadline.
void wait_for_sessions(discarbiter::Client& client, std::size_t sessions,
                       const Deadline& deadline) {
  while (client.status().clients.size() != sessions) {
    if (deadline.passed())
      throw std::runtime_error(fmt::format("the service did not reach {} sessions", sessions));
  }
}

/// A session that speaks the wire protocol itself (docs/protocol.md
/// "Frames"), for status: the library would also parse the reply (a 135 KB
/// document with 1,000 sessions) into structs, which costs the client more
/// than the service and would hide the service's own latency.
class RawSession {
 public:
  explicit RawSession(const std::string& endpoint)
      : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (!fd_ || endpoint.size() >= sizeof address.sun_path)
      throw std::runtime_error("raw session: no socket for " + endpoint);
    std::memcpy(address.sun_path, endpoint.c_str(), endpoint.size() + 1);
    set_io_deadline(fd_.get());
    if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
      fail_errno("raw session: connect");
    request(
        fmt::format(R"({{"id":0,"op":"hello","protocol":1,"client_name":"loadgen-raw","pid":{}}})",
                    ::getpid()));
  }

  /// Sends one request (JSON, no payload) and reads its whole reply; returns
  /// the reply's JSON text, not parsed.
  const std::string& request(const std::string& json) {
    static_assert(std::endian::native == std::endian::little, "the header is little-endian");
    std::uint32_t header[2] = {static_cast<std::uint32_t>(json.size()), 0};
    if (!write_all(fd_.get(), header, sizeof header) ||
        !write_all(fd_.get(), json.data(), json.size()) ||
        !read_exact(fd_.get(), header, sizeof header))
      throw std::runtime_error("raw session: the service closed the connection");
    reply_.resize(header[0]);
    payload_.resize(header[1]);
    if (!read_exact(fd_.get(), reply_.data(), reply_.size()) ||
        !read_exact(fd_.get(), payload_.data(), payload_.size()))
      throw std::runtime_error("raw session: the service closed the connection");
    if (reply_.find(R"("ok":true)") == std::string::npos)
      throw std::runtime_error("raw session: " + reply_.substr(0, 300));
    return reply_;
  }

  const std::string& status() { return request(R"({"id":1,"op":"status"})"); }

 private:
  unique_fd fd_;
  std::string reply_;
  std::vector<char> payload_;
};

/// N.B. the protocol has no event for "a waiter joined the queue", so this
/// asks for the status document until a drive lists a waiter (only kDrive
/// ever has one here), a request per try, no sleep, with a deadline. It runs
/// before the timed interval starts; the raw session spares the client the
/// parse of a document that grows with the sessions.
void wait_for_waiter(RawSession& observer, const Deadline& deadline) {
  while (observer.status().find(R"("waiters":[{)") == std::string::npos) {
    if (deadline.passed())
      throw std::runtime_error("the waiter did not appear in the drive's queue");
  }
}

/// A second session on a thread of its own: on start(), acquire(kDrive) with
/// a wait, note when it was granted, release it.
class Waiter {
 public:
  explicit Waiter(const std::string& endpoint)
      : client_(connect_options(endpoint, "loadgen-waiter")), thread_([this] { run(); }) {}
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  ~Waiter() {
    {
      std::lock_guard lock(mutex_);
      state_ = State::quit;
    }
    cv_.notify_all();
    thread_.join();
  }

  void start() {
    {
      std::lock_guard lock(mutex_);
      state_ = State::go;
    }
    cv_.notify_all();
  }

  /// When the grant arrived; rethrows the waiter's failure.
  Clock::time_point wait_granted(const Deadline& deadline) {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(deadline.ms_left()),
                      [this] { return state_ == State::done; }))
      throw std::runtime_error("the waiter was not granted the drive in time");
    state_ = State::idle;
    if (error_)
      std::rethrow_exception(std::exchange(error_, nullptr));
    return granted_at_;
  }

 private:
  enum class State { idle, go, done, quit };

  void run() {
    std::unique_lock lock(mutex_);
    while (true) {
      cv_.wait(lock, [this] { return state_ == State::go || state_ == State::quit; });
      if (state_ == State::quit)
        return;
      lock.unlock();
      Clock::time_point granted{};
      std::exception_ptr error;
      try {
        client_.acquire_exclusive_access(std::string(kDrive), {.wait = 20s});
        granted = Clock::now();
        client_.release_exclusive_access(std::string(kDrive));
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (state_ == State::quit)  // N.B. the owner gave up waiting: keep quit
        return;
      granted_at_ = granted;
      error_ = error;
      state_ = State::done;
      cv_.notify_all();
    }
  }

  discarbiter::Client client_;
  std::mutex mutex_;
  std::condition_variable cv_;
  State state_ = State::idle;
  Clock::time_point granted_at_{};
  std::exception_ptr error_;
  std::thread thread_;  // N.B. last: it starts once the rest is built
};

/// Another client asking for status in a loop on its own thread (one
/// request outstanding, the reply read but not parsed), until stopped.
class StatusHammer {
 public:
  explicit StatusHammer(const std::string& endpoint)
      : session_(endpoint), thread_([this] { run(); }) {}
  StatusHammer(const StatusHammer&) = delete;
  StatusHammer& operator=(const StatusHammer&) = delete;
  ~StatusHammer() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
  }
  /// Stops it; the number of status replies it received.
  std::uint64_t stop() {
    stop_ = true;
    if (thread_.joinable())
      thread_.join();
    if (error_)
      std::rethrow_exception(std::exchange(error_, nullptr));
    return replies_;
  }

 private:
  void run() {
    try {
      while (!stop_) {
        session_.status();
        ++replies_;
      }
    } catch (...) {
      error_ = std::current_exception();
    }
  }

  RawSession session_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> replies_{0};
  std::exception_ptr error_;
  std::thread thread_;
};

// ---- the run -----------------------------------------------------------------------

struct Options {
  std::string service = DISCARBITERD_PATH;
  std::string self;  // this executable, for the children
  bool smoke = false;
  std::size_t iterations = 5000;
  double seconds = 1.0;
  std::size_t sessions = 1000;
  std::set<std::string> only;  // empty: every group
  bool wants(const std::string& group) const { return only.empty() || only.contains(group); }
};

constexpr std::array kGroups = {"floors",  "lock",    "handoff", "kill",
                                "execute", "connect", "status",  "idle"};

// ---- floors ----

void raw_round_trip(const Options& o) {
  auto [mine, theirs] = socket_pair();
  const int their_fd = theirs.get();
  Child echo = Child::fork_run([their_fd] {
    char b[kSmallMessage];
    while (read_exact(their_fd, b, sizeof b) && write_all(their_fd, b, sizeof b)) {
    }
  });
  theirs.reset();
  char b[kSmallMessage] = {};
  const int fd = mine.get();
  emit_latency("raw_round_trip_64b", sample(4 * o.iterations, [fd, &b] {
                 const auto t0 = Clock::now();
                 if (!write_all(fd, b, sizeof b) || !read_exact(fd, b, sizeof b))
                   throw std::runtime_error("raw round trip: the echo child is gone");
                 return Clock::now() - t0;
               }));
}

void raw_stream(const Options& o, std::string_view key, std::size_t chunk) {
  std::vector<char> buffer(chunk, 'x');  // N.B. before fork: the child reads into its copy
  auto [mine, theirs] = socket_pair();
  const int their_fd = theirs.get();
  char* data = buffer.data();
  Child sink = Child::fork_run([their_fd, data, chunk] {
    char ack[kSmallMessage] = {};
    while (read_exact(their_fd, data, chunk) && write_all(their_fd, ack, sizeof ack)) {
    }
  });
  theirs.reset();
  const int fd = mine.get();
  measure_throughput(key, chunk, o.seconds, [fd, data, chunk] {
    char ack[kSmallMessage];
    if (!write_all(fd, data, chunk) || !read_exact(fd, ack, sizeof ack))
      throw std::runtime_error("raw stream: the sink child is gone");
  });
}

std::size_t kill_iterations(const Options& o) {
  return std::max<std::size_t>(20, o.iterations / 20);
}

/// SIGKILLs `child`, then reads `fd` (the child's end is its only other
/// holder): the time until the read returns 0. Reaps the child.
Clock::duration kill_until_eof(Child& child, int fd, std::string_view what) {
  const auto t0 = Clock::now();
  child.kill(SIGKILL);
  char c;
  const ssize_t r = ::read(fd, &c, 1);
  const auto t1 = Clock::now();
  if (r != 0)
    throw std::runtime_error(fmt::format("{}: the read did not return EOF", what));
  child.wait(Deadline(10s));
  return t1 - t0;
}

/// kill() -> EOF: a child (this program, as the holder below is) holds one
/// end of a socket pair; the time from SIGKILL to read() returning 0.
void kill_to_eof(const Options& o) {
  emit_latency("kill_to_eof", sample(kill_iterations(o), [&o] {
                 auto [mine, theirs] = socket_pair();
                 Child child = Child::spawn({o.self, "--child-socket"}, {{theirs.get(), 3}});
                 theirs.reset();
                 wait_ready(mine.get(), child, Deadline(10s), "kill_to_eof");
                 return kill_until_eof(child, mine.get(), "kill_to_eof");
               }));
}

// ---- DiscArbiter ----

void lock_figures(const Options& o, const Service& service) {
  discarbiter::Client client(connect_options(service.endpoint(), "loadgen"));
  const std::string drive(kDrive);
  // The pair's halves too, to show where the time goes.
  std::vector<double> acquire_us, release_us;
  auto pairs = sample(o.iterations, [&] {
    const auto t0 = Clock::now();
    client.acquire_exclusive_access(drive);
    const auto t1 = Clock::now();
    client.release_exclusive_access(drive);
    const auto t2 = Clock::now();
    acquire_us.push_back(micros(t1 - t0));
    release_us.push_back(micros(t2 - t1));
    return t2 - t0;
  });
  emit_latency("acquire_release_free", std::move(pairs),
               fmt::format(R"(,"acquire_p50_us":{:.2f},"release_p50_us":{:.2f})",
                           median_of_last(acquire_us, o.iterations),
                           median_of_last(release_us, o.iterations)));
  client.acquire_exclusive_access(drive);
  emit_latency("nested_acquire_release", sample(o.iterations, [&] {
                 const auto t0 = Clock::now();
                 if (client.acquire_exclusive_access(drive) != 2 ||
                     client.release_exclusive_access(drive) != 1)
                   throw std::runtime_error("nested acquire/release: unexpected lock count");
                 return Clock::now() - t0;
               }));
  client.release_exclusive_access(drive);
}

/// Holder's release sent -> the waiter's grant received, `n` times.
std::vector<double> handoffs(discarbiter::Client& holder, Waiter& waiter, RawSession& observer,
                             std::size_t n) {
  const std::string drive(kDrive);
  return sample(n, [&] {
    holder.acquire_exclusive_access(drive);
    waiter.start();
    wait_for_waiter(observer, Deadline(20s));
    const auto t0 = Clock::now();
    holder.release_exclusive_access(drive);
    return waiter.wait_granted(Deadline(20s)) - t0;
  });
}

std::size_t handoff_iterations(const Options& o) {
  return std::max<std::size_t>(20, o.iterations / 5);
}

void handoff(const Options& o, const Service& service) {
  discarbiter::Client holder(connect_options(service.endpoint(), "loadgen-holder"));
  Waiter waiter(service.endpoint());
  RawSession observer(service.endpoint());
  emit_latency("handoff", handoffs(holder, waiter, observer, handoff_iterations(o)));
}

/// A holder (this program, --child-holder) that owns kDrive and said so on
/// its pipe: the pipe's read end, and the child.
std::pair<unique_fd, Child> spawn_holder(const Options& o, const Service& service,
                                         std::string_view what) {
  auto [ready, theirs] = pipe_pair();
  Child holder = Child::spawn({o.self, "--child-holder", service.endpoint()}, {{theirs.get(), 3}});
  theirs.reset();
  wait_ready(ready.get(), holder, Deadline(20s), what);
  return {std::move(ready), std::move(holder)};
}

/// kill() of the holder -> the waiter's grant received; the holder is this
/// program (--child-holder), started afresh each time.
void handoff_after_kill(const Options& o, const Service& service) {
  RawSession observer(service.endpoint());
  Waiter waiter(service.endpoint());
  emit_latency("handoff_after_kill", sample(kill_iterations(o), [&] {
                 auto [ready, holder] = spawn_holder(o, service, "handoff_after_kill");
                 waiter.start();
                 wait_for_waiter(observer, Deadline(20s));
                 const auto t0 = Clock::now();
                 holder.kill(SIGKILL);
                 const auto granted = waiter.wait_granted(Deadline(20s));
                 holder.wait(Deadline(10s));
                 return granted - t0;
               }));
}

/// kill() of the holder -> its parent reads EOF on the holder's ready pipe:
/// handoff_after_kill's holder (connected, holding the drive), no waiter.
/// Not a floor: it shows what the death of a process that is a client costs
/// before anyone can see it (kill_to_eof's child has no session and touched
/// less memory). Pinned, the service's own handling of the same EOF shares
/// the CPU and may run first; unpinned it runs beside. A wait-acquire of its
/// own makes sure the service has freed the drive before the next holder.
void kill_holder_to_eof(const Options& o, const Service& service) {
  discarbiter::Client sync(connect_options(service.endpoint(), "loadgen-sync"));
  const std::string drive(kDrive);
  emit_latency("kill_holder_to_eof", sample(kill_iterations(o), [&] {
                 auto [ready, holder] = spawn_holder(o, service, "kill_holder_to_eof");
                 const auto took = kill_until_eof(holder, ready.get(), "kill_holder_to_eof");
                 sync.acquire_exclusive_access(drive, {.wait = 20s});
                 sync.release_exclusive_access(drive);
                 return took;
               }));
}

std::array<std::uint8_t, 10> cdb10(std::uint8_t opcode, std::uint32_t blocks) {
  return {opcode,
          0,
          0,
          0,
          0,
          0,
          0,
          static_cast<std::uint8_t>(blocks >> 8),
          static_cast<std::uint8_t>(blocks & 0xFF),
          0};
}

void check_command(const discarbiter::CommandResult& r, std::size_t bytes, std::string_view what) {
  if (r.code != discarbiter::errc::ok || r.scsi_status != 0 || r.bytes_transferred != bytes)
    throw std::runtime_error(fmt::format("{}: status {}, {} bytes transferred", what, r.scsi_status,
                                         r.bytes_transferred));
}

void execute_figures(const Options& o, const Service& service) {
  discarbiter::Client client(connect_options(service.endpoint(), "loadgen"));
  const std::string drive(kDrive);
  auto lock = client.acquire(drive);
  const std::uint32_t limit = client.max_transfer(drive);
  struct Size {
    std::string_view suffix;
    std::uint32_t bytes;
  };
  for (const Size size : {Size{"64k", 64 * 1024}, Size{"1m", 1024 * 1024}}) {
    const std::uint32_t bytes = size.bytes;
    if (bytes > limit)
      throw std::runtime_error(fmt::format("drive {} takes at most {} bytes", drive, limit));
    std::vector<std::uint8_t> buffer(bytes);
    for (std::size_t i = 0; i < buffer.size(); ++i)
      buffer[i] = static_cast<std::uint8_t>(i * 7 + 1);  // not zeros: the disc stores it
    const auto write = cdb10(0x2A, bytes / kBlock);
    const auto read = cdb10(0x28, bytes / kBlock);
    measure_throughput(fmt::format("exec_write_{}", size.suffix), bytes, o.seconds, [&] {
      check_command(client.send_command_send_data_to_device(drive, write, buffer), bytes,
                    "WRITE(10)");
    });
    measure_throughput(fmt::format("exec_read_{}", size.suffix), bytes, o.seconds, [&] {
      check_command(client.send_command_get_data_from_device(drive, read, buffer), bytes,
                    "READ(10)");
    });
  }
}

void connect_hello(const Options& o, const Service& service) {
  const auto options = connect_options(service.endpoint(), "loadgen-connect");
  emit_latency("connect_hello", sample(o.iterations, [&] {
                 const auto t0 = Clock::now();
                 discarbiter::Client client(options);
                 return Clock::now() - t0;  // N.B. the close is not timed
               }));
}

std::vector<discarbiter::Client> idle_sessions(const Options& o, const Service& service) {
  std::vector<discarbiter::Client> sessions;
  sessions.reserve(o.sessions);
  const auto options = connect_options(service.endpoint(), "loadgen-idle");
  for (std::size_t i = 0; i < o.sessions; ++i)
    sessions.emplace_back(options);
  return sessions;
}

/// The memory and wake-ups of idle sessions, on a service of its own (what
/// other figures' sessions left in its heap would hide the growth).
void idle_figures(const Options& o, const Service& service) {
  discarbiter::Client prober(connect_options(service.endpoint(), "loadgen-status"));
  const std::string sessions_json = fmt::format(R"(,"sessions":{})", o.sessions);
  const std::uint64_t rss_before = rss_kib(service.pid());
  auto sessions = idle_sessions(o, service);
  // N.B. nothing talks to the service in the window, which starts once the
  // last hello's work is done (the io thread going back to sleep after its
  // reply is that work, not a wake-up) and is longer than the handshake
  // timeout (2 s): a timer a hello left armed fires in it.
  const bool settled = wait_until_asleep(service.pid(), Deadline(1s));
  constexpr auto kWindow = 3s;
  const auto before = context_switches(service.pid());
  std::this_thread::sleep_for(kWindow);  // the measurement window itself
  std::uint64_t switches = 0;
  std::string by_thread;
  for (const auto& [name, count] : context_switches(service.pid())) {
    const auto it = before.find(name);
    const std::uint64_t n = count - (it == before.end() ? 0 : it->second);
    switches += n;
    by_thread += fmt::format(R"({}"{}":{})", by_thread.empty() ? "" : ",", name, n);
  }
  emit(fmt::format(
      R"({{"key":"idle_wakeups","wakeups_per_s":{:.2f},"wakeups":{},"window_s":{},"settled":{},"by_thread":{{{}}}{}}})",
      static_cast<double>(switches) / std::chrono::duration<double>(kWindow).count(), switches,
      std::chrono::duration<double>(kWindow).count(), settled, by_thread, sessions_json));
  const std::uint64_t rss_with = rss_kib(service.pid());
  sessions.clear();
  wait_for_sessions(prober, 1, Deadline(60s));
  // N.B. the service returns what the sessions freed 1 s after they close
  // (kTrimDelay, socket_listener_posix.cpp), off any request's path: read
  // after it.
  std::this_thread::sleep_for(1500ms);
  const std::uint64_t rss_after = rss_kib(service.pid());
  const double growth = static_cast<double>(rss_with) - static_cast<double>(rss_before);
  const double returned = static_cast<double>(rss_with) - static_cast<double>(rss_after);
  emit(fmt::format(
      R"({{"key":"rss_per_idle_session","kib_per_session":{:.2f},"kib_returned":{:.0f},"returned_fraction":{:.3f},"kib_before":{},"kib_with":{},"kib_after":{}{}}})",
      growth / static_cast<double>(o.sessions), returned, growth > 0 ? returned / growth : 0.0,
      rss_before, rss_with, rss_after, sessions_json));
}

/// Status with and without idle sessions, and grants while another client
/// asks for status in a loop. Status is timed on the raw protocol (request
/// sent -> whole reply read: the service's part), and through the library
/// as well (which parses the reply) for the client's share.
void status_figures(const Options& o, const Service& service) {
  RawSession raw(service.endpoint());
  discarbiter::Client prober(connect_options(service.endpoint(), "loadgen-status"));
  const auto raw_status = [&] {
    const auto t0 = Clock::now();
    raw.status();
    return Clock::now() - t0;
  };
  const auto library_status = [&] {
    const auto t0 = Clock::now();
    prober.status();
    return Clock::now() - t0;
  };
  const auto sizes = [&](std::size_t sessions) {
    return fmt::format(R"(,"sessions":{},"reply_bytes":{})", sessions, raw.status().size());
  };
  emit_latency("status_no_sessions", sample(o.iterations / 5 + 20, raw_status), sizes(0));

  // Status and grants with the idle sessions present.
  auto sessions = idle_sessions(o, service);
  const std::string sessions_json = fmt::format(R"(,"sessions":{})", o.sessions);
  emit_latency("status_with_sessions", sample(o.iterations / 10 + 20, raw_status),
               sizes(o.sessions));
  emit_latency("status_with_sessions_library", sample(o.iterations / 20 + 20, library_status),
               sizes(o.sessions));
  discarbiter::Client holder(connect_options(service.endpoint(), "loadgen-holder"));
  Waiter waiter(service.endpoint());
  const std::size_t n = std::max<std::size_t>(20, o.iterations / 10);
  emit_latency("handoff_with_sessions", handoffs(holder, waiter, raw, n), sessions_json);
  StatusHammer hammer(service.endpoint());
  auto under_load = handoffs(holder, waiter, raw, n);
  const std::uint64_t statuses = hammer.stop();
  emit_latency("handoff_under_status_load", std::move(under_load),
               fmt::format(R"({},"status_replies":{})", sessions_json, statuses));
}

// ---- the children ----

/// --child-socket: fd 3 is one end of a socket pair; says ready, then waits
/// to be killed.
int child_socket() {
  if (::write(3, "r", 1) != 1)
    return 1;
  while (true)
    ::pause();
}

/// --child-holder ENDPOINT: acquires kDrive, says ready on fd 3, waits to be
/// killed.
int child_holder(const std::string& endpoint) {
  try {
    discarbiter::Client client(connect_options(endpoint, "loadgen-killed"));
    client.acquire_exclusive_access(std::string(kDrive));
    if (::write(3, "r", 1) != 1)
      return 1;
    while (true)  // N.B. in the Client's scope: its session holds the drive
      ::pause();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen holder: %s\n", e.what());
    [[maybe_unused]] const auto told = ::write(3, "e", 1);
    return 1;
  }
}

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "loadgen: %s\n"
               "usage: discarbiter_loadgen [--smoke] [--iterations N] [--seconds S] "
               "[--sessions N] [--only GROUP,...] [--service PATH]\n"
               "groups: floors lock handoff kill execute connect status idle\n",
               problem.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  std::optional<std::size_t> iterations, sessions;
  std::optional<double> seconds;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    try {
      if (arg == "--smoke") {
        o.smoke = true;
      } else if (arg == "--iterations") {
        iterations = std::stoul(value());
      } else if (arg == "--seconds") {
        seconds = std::stod(value());
      } else if (arg == "--sessions") {
        sessions = std::stoul(value());
      } else if (arg == "--service") {
        o.service = value();
      } else if (arg == "--only") {
        std::stringstream list(value());
        for (std::string group; std::getline(list, group, ',');) {
          if (std::find(kGroups.begin(), kGroups.end(), group) == kGroups.end())
            usage(fmt::format("unknown group '{}'", group));
          o.only.insert(group);
        }
      } else {
        usage(fmt::format("unknown argument '{}'", arg));
      }
    } catch (const std::logic_error&) {  // stoul/stod
      usage(fmt::format("bad value for {}", arg));
    }
  }
  // --smoke: seconds in all, numbers still sane (few samples, 50 sessions).
  o.iterations = iterations.value_or(o.smoke ? 100 : 5000);
  o.seconds = seconds.value_or(o.smoke ? 0.1 : 1.0);
  o.sessions = sessions.value_or(o.smoke ? 50 : 1000);
  if (o.iterations == 0 || o.sessions == 0 || !(o.seconds > 0))
    usage("--iterations, --sessions and --seconds must be positive");
  std::error_code ec;
  o.self = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec)
    throw std::system_error(ec, "readlink /proc/self/exe");
  return o;
}

/// The CPUs the tool (and so everything it starts) may run on, "0" or "0-1".
std::string affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0)
    return "?";
  std::string cpus;
  for (std::size_t cpu = 0; cpu < std::size_t{CPU_SETSIZE}; ++cpu) {
    if (CPU_ISSET(cpu, &set))
      cpus += (cpus.empty() ? "" : ",") + std::to_string(cpu);
  }
  return cpus;
}

/// Room for 1,000 sessions' descriptors in the service (it inherits this).
void raise_fd_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

/// Runs `figures`; on a failure, shows the end of the service's log.
void with_log(const Service& service, const std::function<void()>& figures) {
  try {
    figures();
  } catch (const std::exception&) {
    std::fprintf(stderr, "loadgen: discarbiterd's log ends:\n%s\n", service.log_tail().c_str());
    throw;
  }
}

int run(const Options& o) {
  install_signal_handlers();
  raise_fd_limit();
  emit(fmt::format(R"({{"cpus":"{}","smoke":{},"iterations":{},"seconds":{},"sessions":{}}})",
                   affinity(), o.smoke, o.iterations, o.seconds, o.sessions),
       "bench-info");
  if (o.wants("floors")) {
    raw_round_trip(o);
    raw_stream(o, "raw_stream_64k", 64 * 1024);
    raw_stream(o, "raw_stream_1m", 1024 * 1024);
  }
  if (o.wants("kill"))
    kill_to_eof(o);
  // N.B. one service for every group but "idle", which needs its own.
  if (std::any_of(kGroups.begin() + 1, kGroups.end() - 1,
                  [&](const char* g) { return o.wants(g); })) {
    Service service(o.service);
    with_log(service, [&] {
      if (o.wants("lock"))
        lock_figures(o, service);
      if (o.wants("handoff"))
        handoff(o, service);
      if (o.wants("kill")) {
        handoff_after_kill(o, service);
        kill_holder_to_eof(o, service);
      }
      if (o.wants("execute"))
        execute_figures(o, service);
      if (o.wants("connect"))
        connect_hello(o, service);
      if (o.wants("status"))
        status_figures(o, service);
    });
  }
  if (o.wants("idle")) {
    Service service(o.service);
    with_log(service, [&] { idle_figures(o, service); });
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--child-socket")
    return child_socket();
  if (argc == 3 && std::string_view(argv[1]) == "--child-holder")
    return child_holder(argv[2]);
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loadgen: error: %s\n", e.what());
    return 1;
  }
}
