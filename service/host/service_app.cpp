#include "host/service_app.hpp"

#include <utility>  // N.B. before Asio (Boost 1.74 + g++ 12)

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <csignal>

#include <spdlog/spdlog.h>

#include "discarbiter/process.hpp"
#include "host/drive_set.hpp"
#include "host/logging.hpp"
#include "host/platform.hpp"
#include "host/version.hpp"
#include "transport/asio_scheduler.hpp"
#include "transport/listener.hpp"
#include "transport/log_limiter.hpp"

namespace discarbiter::host {
namespace {

namespace asio = boost::asio;

/// Every lock decision, in the log, with the owner's identity.
///
/// N.B. levels: what changes who holds a drive (first acquire, final
/// release, break, session end, timeouts, drive errors) is logged at info or
/// warn. A nested acquire or release changes nothing anyone else sees:
/// debug. What a client can repeat at will (a failed acquire, a wait that
/// joins, expires or is dropped, and an ordinary user's own acquire/release
/// cycles, which it can run thousands of times a second) goes through the
/// per-peer and per-session limiter, so no user can push everyone's records
/// out of journald's burst window. Never limited: what an administrator
/// does, `break`, timeouts and drive errors.
class LoggingAudit final : public core::AuditLog {
 public:
  void record(const core::AuditRecord& r) override {
    std::string note;
    switch (r.kind) {
      case core::AuditKind::nested:
      case core::AuditKind::released:
        return write(spdlog::level::debug, r, note);
      case core::AuditKind::acquire_failed:
      case core::AuditKind::waiting:
      case core::AuditKind::wait_expired:
      case core::AuditKind::wait_dropped: {
        const auto admitted = transport::client_warnings().admit(transport::peer_key(r.user),
                                                                 transport::session_key(r.session));
        if (!admitted)
          return;
        note = transport::suppressed_note(admitted);
        return write(
            r.kind == core::AuditKind::acquire_failed ? spdlog::level::warn : spdlog::level::info,
            r, note);
      }
      case core::AuditKind::acquired:
      case core::AuditKind::freed:
      case core::AuditKind::session_ended: {
        if (!r.administrator) {
          const auto admitted = transport::client_warnings().admit(
              transport::peer_key(r.user), transport::session_key(r.session));
          if (!admitted)
            return;
          note = transport::suppressed_note(admitted);
        }
        return write(spdlog::level::info, r, note);
      }
      case core::AuditKind::command_timeout:
      case core::AuditKind::drive_error:
        return write(spdlog::level::warn, r, note);
      default:
        return write(spdlog::level::info, r, note);
    }
  }

 private:
  static void write(spdlog::level::level_enum level, const core::AuditRecord& r,
                    const std::string& note) {
    spdlog::log(level, "{} drive={} client='{}' session={} pid={} user={} lock_count={}{}{}{}",
                core::to_string(r.kind), r.drive, r.client_name, r.session, r.pid,
                r.user.empty() ? "?" : r.user, r.lock_count, r.detail.empty() ? "" : ": ", r.detail,
                note);
  }
};

constexpr auto kStopGrace = std::chrono::seconds(10);

}  // namespace

int run_service(const Config& config, const RunHooks& hooks) {
  asio::io_context io(1);  // N.B. one thread: it is the arbiter's strand
  transport::AsioScheduler scheduler(io);
  LoggingAudit audit;
  transport::client_warnings().set_limits(config.warnings);
  core::Arbiter arbiter(scheduler, audit, config.arbiter);

  // N.B. before anything is announced: a signal that comes early waits in
  // the set instead of killing the process.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  DriveSet drives(io, arbiter, config);
  if (auto started = drives.start(); !started) {
    spdlog::critical("{}", started.error().message);
    return 1;
  }

  transport::ListenerOptions options = config.listener;
  options.endpoint = config.endpoint.empty() ? transport::default_endpoint() : config.endpoint;
  const auto started = std::chrono::steady_clock::now();
  auto describe_service = [&] {
    return proto::ServiceInfo{
        std::string(kVersion),
        proto::kProtocolVersion,
        current_process_id(),
        std::string(platform_name()),
        options.endpoint,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
        log_records_dropped()};
  };
  // N.B. status documents are written on a thread of their own
  // (status_writer.hpp): a grant never waits behind one on the io thread.
  // Its text is written at the idle priority, so that a grant's threads (the
  // io thread, the drive's worker, the waiter) are not delayed behind it on a
  // busy CPU; it leaves that priority (for nice 10, as the log's writer)
  // before it posts the frames to the io thread, whose lock it then takes,
  // and before it frees the snapshot (platform.hpp).
  asio::thread_pool status_thread(1);
  asio::post(status_thread, lower_current_thread_priority);
  transport::StatusWriter status_writer(
      [&] {
        return transport::StatusSnapshot{arbiter.status_snapshot(), describe_service()};
      },
      [&status_thread](transport::StatusWriter::Job job) {
        asio::post(status_thread, [job = std::move(job)] {
          idle_current_thread_priority(true);
          job();
        });
      },
      [&io](transport::StatusWriter::Job job) {
        // N.B. from the status thread (a document's frames) or the io thread
        // (each frame to its session, status_writer.cpp).
        if (!io.get_executor().running_in_this_thread())
          idle_current_thread_priority(false);
        asio::post(io, std::move(job));
      });
  transport::ServiceContext context{arbiter, std::string(kVersion), status_writer};
  auto listener = transport::make_listener(io, context, options);
  if (auto opened = listener->open(); !opened) {
    spdlog::critical("cannot listen on {}: {}", options.endpoint, opened.error().message);
    return 1;
  }
  listener->start();
  spdlog::info("discarbiterd {} listening on {} with {} drive(s)", kVersion, options.endpoint,
               drives.attached());
  // Orderly stop: no new clients, every session ends (its locks are released
  // through ALLOW and the OS unlock on the drive's worker), then the loop ends
  // once every drive is free or the grace period has passed.
  asio::steady_timer grace(io);
  bool stopping = false;
  auto begin_stop = [&](const std::string& reason) {
    if (std::exchange(stopping, true))
      return;
    spdlog::info("{}: stopping; releasing every lock", reason);
    if (hooks.on_stopping)
      hooks.on_stopping(reason);
    listener->stop();
    grace.expires_after(kStopGrace);
    grace.async_wait([&](boost::system::error_code ec) {
      if (!ec) {
        spdlog::warn("drives still busy after {} s; stopping anyway", kStopGrace.count());
        io.stop();
      }
    });
    arbiter.when_all_free([&] {
      grace.cancel();
      io.stop();
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (!ec)
      begin_stop(fmt::format("signal {}", signo));
  });
  if (hooks.on_ready) {
    // N.B. post: the caller may be on another thread (the SCM's handler).
    hooks.on_ready([&io, &begin_stop](std::string reason) {
      asio::post(io, [&begin_stop, reason = std::move(reason)] { begin_stop(reason); });
    });
  }
  accept_stop_signals();  // N.B. only here: every other thread keeps them blocked
  io.run();
  drives.stop();
  spdlog::info("discarbiterd stopped");
  return 0;
}

}  // namespace discarbiter::host
