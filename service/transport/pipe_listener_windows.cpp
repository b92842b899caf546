// The Windows endpoint: a byte-mode named pipe (\\.\pipe\DiscArbiter).
//
// One instance always listens: as soon as a client connects to it, the next
// instance is created and listens. A connected instance is first read from
// (N.B. impersonation needs the client to have written), then the client is
// identified by impersonation, then it becomes a Session like any socket
// connection.
#include "transport/pipe_security_windows.hpp"

#include <sddl.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/windows/overlapped_ptr.hpp>
#include <boost/asio/windows/stream_handle.hpp>
#include <cstdlib>
#include <set>

#include "discarbiter/win32/account.hpp"
#include "discarbiter/win32/error.hpp"
#include "discarbiter/win32/handle.hpp"
#include "discarbiter/win32/wide.hpp"
#include "transport/identity_resolver.hpp"
#include "transport/listener.hpp"

namespace discarbiter::transport {
namespace {

namespace asio = boost::asio;
using Pipe = asio::windows::stream_handle;
using win32::describe;

constexpr std::string_view kPipePrefix = R"(\\.\pipe\)";
constexpr auto kRetryCreate = std::chrono::seconds(1);

std::vector<std::uint8_t> token_information(HANDLE token, TOKEN_INFORMATION_CLASS what) {
  DWORD size = 0;
  ::GetTokenInformation(token, what, nullptr, 0, &size);
  std::vector<std::uint8_t> buffer(size);
  if (size == 0 || !::GetTokenInformation(token, what, buffer.data(), size, &size))
    return {};
  return buffer;
}

using win32::account_name;

std::string process_image(std::uint32_t pid) {
  win32::unique_handle process(::OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid));
  if (!process)
    return {};
  std::array<wchar_t, MAX_PATH * 2> path{};
  DWORD len = static_cast<DWORD>(path.size());
  if (!::QueryFullProcessImageNameW(process.get(), 0, path.data(), &len))
    return {};
  return win32::to_utf8({path.data(), len});
}

/// Whether `token` (an impersonation token) has `group` enabled. A member of
/// Administrators whose process is not elevated has it deny-only: not one.
bool token_has(HANDLE token, WELL_KNOWN_SID_TYPE group) {
  std::array<std::uint8_t, SECURITY_MAX_SID_SIZE> sid{};
  DWORD size = static_cast<DWORD>(sid.size());
  if (!::CreateWellKnownSid(group, nullptr, sid.data(), &size))
    return false;
  BOOL member = FALSE;
  return ::CheckTokenMembership(token, sid.data(), &member) && member;
}

/// This process's user SID as text ("S-1-5-18" for LocalSystem).
Result<std::wstring> own_user_sid() {
  HANDLE raw = nullptr;
  if (!::OpenProcessToken(::GetCurrentProcess(), TOKEN_QUERY, &raw))
    return Error{errc::fail, describe("OpenProcessToken", ::GetLastError())};
  const win32::unique_handle token(raw);
  const auto user = token_information(token.get(), TokenUser);
  if (user.empty())
    return Error{errc::fail, describe("GetTokenInformation(TokenUser)", ::GetLastError())};
  wchar_t* text = nullptr;
  if (!::ConvertSidToStringSidW(reinterpret_cast<const TOKEN_USER*>(user.data())->User.Sid, &text))
    return Error{errc::fail, describe("ConvertSidToStringSidW", ::GetLastError())};
  const win32::unique_hlocal owner(text);
  return std::wstring(text);
}

/// What impersonation tells about the client, read on the strand while the
/// pipe is fresh: impersonation, the token's user and groups
/// (CheckTokenMembership) and the process image are local calls that never
/// wait on another machine.
struct PipeClient {
  core::PeerIdentity peer;        // all but the account's name
  std::vector<std::uint8_t> sid;  // the user's, for LookupAccountSidW
};

/// Who is on the other end of a connected pipe instance, by impersonation.
Result<PipeClient> identify_client(HANDLE pipe) {
  PipeClient client;
  core::PeerIdentity& peer = client.peer;
  ULONG pid = 0;
  // N.B. Wine answers TRUE with pid 0; the pid from hello is the fallback.
  if (::GetNamedPipeClientProcessId(pipe, &pid))
    peer.pid = pid;
  if (!::ImpersonateNamedPipeClient(pipe))
    return Error{errc::access_denied, describe("ImpersonateNamedPipeClient", ::GetLastError())};
  HANDLE raw_token = nullptr;
  const BOOL opened = ::OpenThreadToken(::GetCurrentThread(), TOKEN_QUERY, TRUE, &raw_token);
  const DWORD open_error = ::GetLastError();
  if (!::RevertToSelf()) {
    // N.B. fail hard: carrying on would run the service as its client.
    spdlog::critical("{}", describe("RevertToSelf", ::GetLastError()));
    std::abort();
  }
  if (!opened)
    return Error{errc::access_denied, describe("OpenThreadToken", open_error)};
  const win32::unique_handle token(raw_token);

  const auto user = token_information(token.get(), TokenUser);
  if (user.empty())
    return Error{errc::access_denied, describe("GetTokenInformation(TokenUser)", ::GetLastError())};
  PSID sid = reinterpret_cast<const TOKEN_USER*>(user.data())->User.Sid;
  wchar_t* sid_text = nullptr;
  if (!::ConvertSidToStringSidW(sid, &sid_text))
    return Error{errc::access_denied, describe("ConvertSidToStringSidW", ::GetLastError())};
  const win32::unique_hlocal sid_owner(sid_text);
  peer.sid = win32::to_utf8(sid_text);
  const auto* sid_bytes = static_cast<const std::uint8_t*>(sid);
  client.sid.assign(sid_bytes, sid_bytes + ::GetLengthSid(sid));
  peer.administrator = token_has(token.get(), WinBuiltinAdministratorsSid) ||
                       token_has(token.get(), WinLocalSystemSid);
  if (peer.pid != 0)
    peer.exe = process_image(peer.pid);
  return client;
}

/// The client's account name: LookupAccountSidW may ask a domain
/// controller, so this runs off the strand.
Identified name_account(PipeClient client) {
  Identified out{std::move(client.peer), {}, false};
  out.peer.user = account_name(client.sid.data());
  out.user_found = !out.peer.user.empty();
  if (!out.user_found)
    out.peer.user = *out.peer.sid;  // an account without a name still has its SID
  return out;
}

/// A connected instance whose client has not written yet.
struct Greeting {
  Greeting(std::shared_ptr<Pipe> p, asio::io_context& io) : pipe(std::move(p)), deadline(io) {}
  std::shared_ptr<Pipe> pipe;
  asio::steady_timer deadline;
  std::array<std::uint8_t, 4096> buffer{};
};

class PipeListener final : public Listener {
 public:
  PipeListener(asio::io_context& io, ServiceContext& context, ListenerOptions options)
      : io_(io),
        context_(context),
        options_(std::move(options)),
        retry_(io),
        sessions_(options_.max_sessions, options_.max_sessions_per_user,
                  options_.admin_reserved_sessions),
        identities_(io.get_executor(), options_.max_pending_connections) {}

  Result<Done> open() override {
    if (!options_.admin_group.empty()) {
      return Error{errc::invalid_arg,
                   fmt::format("admin_group '{}' is for Linux; on Windows the administrators are "
                               "BUILTIN\\Administrators and SYSTEM",
                               options_.admin_group)};
    }
    if (!options_.socket_group.empty()) {
      return Error{errc::invalid_arg,
                   fmt::format("socket_group '{}' is for Linux; on Windows the pipe's DACL lets "
                               "every authenticated user in",
                               options_.socket_group)};
    }
    if (!options_.endpoint.starts_with(kPipePrefix) ||
        options_.endpoint.size() == kPipePrefix.size()) {
      return Error{
          errc::invalid_arg,
          fmt::format(R"(endpoint '{}' is not a pipe name (\\.\pipe\NAME))", options_.endpoint)};
    }
    name_ = win32::to_wide(options_.endpoint);
    // N.B. the owner is this process's user, said explicitly: clients trust
    // the pipe by its owner (LocalSystem, or their own user), and a token's
    // default owner may be a group (Administrators; Wine: the user's primary
    // group).
    const auto owner = own_user_sid();
    if (!owner)
      return owner.error();
    const std::wstring sddl = L"O:" + *owner + kPipeSddl;
    PSECURITY_DESCRIPTOR descriptor = nullptr;
    if (!::ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl.c_str(), SDDL_REVISION_1,
                                                                &descriptor, nullptr)) {
      return Error{errc::fail, describe("ConvertStringSecurityDescriptorToSecurityDescriptorW",
                                        ::GetLastError())};
    }
    security_descriptor_.reset(descriptor);
    auto first = create_instance(true);
    if (!first) {
      const DWORD error = ::GetLastError();
      // N.B. with FILE_FLAG_FIRST_PIPE_INSTANCE, ACCESS_DENIED means the name
      // is taken: another service (or an impostor) already listens on it.
      if (error == ERROR_ACCESS_DENIED) {
        return Error{errc::fail,
                     fmt::format("another process already owns the pipe {}", options_.endpoint)};
      }
      return Error{errc::fail,
                   describe(fmt::format("CreateNamedPipeW {}", options_.endpoint), error)};
    }
    first_instance_ = std::move(first);
    return Done{};
  }

  void start() override { listen(std::move(first_instance_)); }

  void stop() override {
    stopping_ = true;
    retry_.cancel();
    boost::system::error_code ignored;
    if (listening_)
      listening_->close(ignored);  // N.B. cancels the pending ConnectNamedPipe
    for (const auto& greeting : greetings_)
      greeting->pipe->close(ignored);
    greetings_.clear();
    identities_.stop();  // N.B. never waits for a look-up that is stuck
    refusals_.stop();
    sessions_.close_all("service stopping");
  }

  std::size_t session_count() const override { return sessions_.size(); }

 private:
  win32::unique_hfile create_instance(bool first) {
    SECURITY_ATTRIBUTES attributes{sizeof attributes, security_descriptor_.get(), FALSE};
    const DWORD open_mode =
        PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
    return win32::unique_hfile(::CreateNamedPipeW(name_.c_str(), open_mode, kPipeMode,
                                                  PIPE_UNLIMITED_INSTANCES, kPipeBufferBytes,
                                                  kPipeBufferBytes, 0, &attributes));
  }

  /// Makes a new instance listen; on failure, tries again shortly (a listener
  /// that gave up would leave clients with ERROR_FILE_NOT_FOUND).
  void listen_next() {
    auto instance = create_instance(false);
    if (!instance) {
      spdlog::error("{}; retrying in {} s", describe("CreateNamedPipeW", ::GetLastError()),
                    kRetryCreate.count());
      retry_.expires_after(kRetryCreate);
      retry_.async_wait([this](boost::system::error_code ec) {
        if (!ec && !stopping_)
          listen_next();
      });
      return;
    }
    listen(std::move(instance));
  }

  void listen(win32::unique_hfile instance) {
    auto pipe = std::make_shared<Pipe>(io_, instance.release());
    listening_ = pipe;
    asio::windows::overlapped_ptr connect(
        io_, [this, pipe](boost::system::error_code ec, std::size_t) { on_connect(pipe, ec); });
    const BOOL ok = ::ConnectNamedPipe(pipe->native_handle(), connect.get());
    const DWORD error = ::GetLastError();
    if (ok || error == ERROR_IO_PENDING) {
      connect.release();  // the completion arrives through the io_context
    } else if (error == ERROR_PIPE_CONNECTED) {
      // N.B. the client connected between CreateNamedPipe and ConnectNamedPipe:
      // that is a success, and no completion packet will come.
      connect.complete({}, 0);
    } else {
      connect.complete(
          boost::system::error_code(static_cast<int>(error), boost::system::system_category()), 0);
    }
  }

  void on_connect(const std::shared_ptr<Pipe>& pipe, boost::system::error_code ec) {
    if (stopping_ || ec == asio::error::operation_aborted)
      return;
    // N.B. first: a new instance listens before this client is served.
    listen_next();
    if (ec) {
      // ERROR_NO_DATA: the client connected and closed before we saw it.
      if (ec.value() != ERROR_NO_DATA)
        spdlog::error("ConnectNamedPipe {}: {}", options_.endpoint, ec.message());
      return;
    }
    greet(pipe);
  }

  /// Reads the client's first bytes within the handshake deadline, then
  /// identifies it and hands the pipe to a Session. At most
  /// max_pending_connections wait so, to write or to be identified: until
  /// then a client is nobody, so no per-user limit can hold it.
  void greet(const std::shared_ptr<Pipe>& pipe) {
    const std::size_t waiting = greetings_.size() + identities_.pending();
    if (waiting >= options_.max_pending_connections) {
      const Error full{errc::limit_reached,
                       fmt::format("{} connections are already waiting to send their first "
                                   "request or to be identified (limits.max_pending_connections)",
                                   waiting)};
      // N.B. once per episode: a flood must not flood the log as well.
      if (!pending_full_)
        spdlog::warn("refusing pipe clients: {}", full.message);
      pending_full_ = true;
      refusals_.refuse(std::move(*pipe), full);
      return;
    }
    pending_full_ = false;
    auto greeting = std::make_shared<Greeting>(pipe, io_);
    greetings_.insert(greeting);
    greeting->deadline.expires_after(options_.session.handshake);
    greeting->deadline.async_wait([this, greeting](boost::system::error_code ec) {
      if (ec)
        return;
      spdlog::debug("pipe client sent nothing within {} ms; closing",
                    options_.session.handshake.count());
      boost::system::error_code ignored;
      greeting->pipe->close(ignored);
    });
    pipe->async_read_some(asio::buffer(greeting->buffer),
                          [this, greeting](boost::system::error_code ec, std::size_t n) {
                            greeting->deadline.cancel();
                            if (greetings_.erase(greeting) == 0 || stopping_)
                              return;
                            if (ec) {
                              if (!is_peer_gone(ec) && ec != asio::error::operation_aborted)
                                spdlog::warn("pipe: first read: {}", ec.message());
                              return;
                            }
                            on_first_bytes(*greeting, n);
                          });
  }

  void on_first_bytes(Greeting& greeting, std::size_t n) {
    proto::Bytes first(greeting.buffer.begin(),
                       greeting.buffer.begin() + static_cast<std::ptrdiff_t>(n));
    auto client = identify_client(greeting.pipe->native_handle());
    if (!client) {
      spdlog::warn("refusing pipe client: {}", client.error().message);
      refusals_.refuse(std::move(*greeting.pipe), client.error());
      return;
    }
    if (const std::string* user = user_names_.find(*client->peer.sid)) {
      // N.B. on the strand: nothing left to look up waits.
      client->peer.user = *user;
      admit_connection(sessions_, refusals_, std::move(*greeting.pipe), context_,
                       std::move(client->peer), options_.session, std::move(first));
      return;
    }
    identities_.submit(
        [client = std::move(*client)] { return name_account(client); },
        [this, pipe = greeting.pipe, first = std::move(first)](Identified identified) mutable {
          if (identified.user_found && identified.peer.sid)
            user_names_.remember(*identified.peer.sid, identified.peer.user);
          admit_connection(sessions_, refusals_, std::move(*pipe), context_,
                           std::move(identified.peer), options_.session, std::move(first));
        });
  }

  asio::io_context& io_;
  ServiceContext& context_;
  ListenerOptions options_;
  std::wstring name_;
  win32::unique_hlocal security_descriptor_;
  win32::unique_hfile first_instance_;
  std::shared_ptr<Pipe> listening_;
  asio::steady_timer retry_;
  std::set<std::shared_ptr<Greeting>> greetings_;
  SessionRegistry sessions_;
  Refusals refusals_;
  // N.B. after what its look-ups' completions use, so destroyed (stopped) first.
  IdentityResolver identities_;
  RecentUserNames<std::string> user_names_;  // by SID
  bool pending_full_ = false;                // max_pending_connections reached; logged once
  bool stopping_ = false;
};

}  // namespace

std::unique_ptr<Listener> make_listener(asio::io_context& io, ServiceContext& context,
                                        ListenerOptions options) {
  return std::make_unique<PipeListener>(io, context, std::move(options));
}

std::string default_endpoint() {
  return R"(\\.\pipe\DiscArbiter)";
}

}  // namespace discarbiter::transport
