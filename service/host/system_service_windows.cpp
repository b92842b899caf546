// discarbiterd under the service control manager, and its registration.
//
// The SCM's rules, kept here: ServiceMain reports START_PENDING at once and
// RUNNING only once the pipe listens; the control handler only records the
// request and signals the service to stop (it never blocks); no exception
// ever crosses into the SCM; STOPPED is the last report.
#include <windows.h>

#include <array>
#include <filesystem>
#include <mutex>

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/win_eventlog_sink.h>
#include <spdlog/spdlog.h>

#include "discarbiter/win32/error.hpp"
#include "discarbiter/win32/handle.hpp"
#include "discarbiter/win32/wide.hpp"
#include "host/data_directory_windows.hpp"
#include "host/logging.hpp"
#include "host/service_app.hpp"
#include "host/system_service.hpp"
#include "host/version.hpp"

namespace discarbiter::host {
namespace {

using win32::describe;

constexpr DWORD kStartWaitHintMs = 10'000;
constexpr DWORD kStopWaitHintMs = 15'000;  // the service's 10 s grace for drives, and some
constexpr DWORD kPreshutdownTimeoutMs = 15'000;
constexpr std::size_t kLogFileBytes = 5 * 1024 * 1024;
constexpr std::size_t kLogFiles = 5;
constexpr std::array<std::pair<DWORD, DWORD>, 3> kRestartDelaysMs = {
    {{SC_ACTION_RESTART, 5'000}, {SC_ACTION_RESTART, 30'000}, {SC_ACTION_RESTART, 60'000}}};
constexpr DWORD kFailureResetSeconds = 24 * 60 * 60;
constexpr wchar_t kEventSourceKey[] =
    L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\DiscArbiter";

const std::wstring& service_name() {
  static const std::wstring name = win32::to_wide(kServiceName);
  return name;
}

/// What ServiceMain and the control handler share. N.B. one instance: the
/// SCM's ServiceMain takes no context pointer.
struct ServiceState {
  std::mutex mutex;
  SERVICE_STATUS_HANDLE handle = nullptr;
  SERVICE_STATUS status{};
  const ConfigLoader* load_config = nullptr;
  RequestStop request_stop;  // set while the service runs
  std::string pending_stop;  // a stop asked for before the service was ready
  int exit_code = 0;

  void report(DWORD state, DWORD wait_hint_ms = 0) {
    std::lock_guard lock(mutex);
    report_locked(state, wait_hint_ms);
  }
  void report_locked(DWORD state, DWORD wait_hint_ms) {
    status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    status.dwCurrentState = state;
    status.dwControlsAccepted =
        state == SERVICE_RUNNING
            ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PRESHUTDOWN
            : 0;
    status.dwWaitHint = wait_hint_ms;
    const bool pending = state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING;
    status.dwCheckPoint = pending ? status.dwCheckPoint + 1 : 0;
    if (state == SERVICE_STOPPED && exit_code != 0) {
      status.dwWin32ExitCode = ERROR_SERVICE_SPECIFIC_ERROR;
      status.dwServiceSpecificExitCode = static_cast<DWORD>(exit_code);
    }
    if (handle)
      ::SetServiceStatus(handle, &status);
  }
};

ServiceState g_service;

DWORD WINAPI control_handler(DWORD control, DWORD, void*, void*) {
  const char* reason = nullptr;
  switch (control) {
    case SERVICE_CONTROL_STOP:
      reason = "service control STOP";
      break;
    case SERVICE_CONTROL_SHUTDOWN:
      reason = "service control SHUTDOWN";
      break;
    case SERVICE_CONTROL_PRESHUTDOWN:
      reason = "service control PRESHUTDOWN";
      break;
    case SERVICE_CONTROL_INTERROGATE:
      return NO_ERROR;
    default:
      return ERROR_CALL_NOT_IMPLEMENTED;
  }
  try {
    std::lock_guard lock(g_service.mutex);
    if (g_service.status.dwCurrentState == SERVICE_STOP_PENDING ||
        g_service.status.dwCurrentState == SERVICE_STOPPED)
      return NO_ERROR;
    g_service.report_locked(SERVICE_STOP_PENDING, kStopWaitHintMs);
    if (g_service.request_stop)
      g_service.request_stop(reason);  // posts to the service's thread; returns at once
    else
      g_service.pending_stop = reason;
  } catch (...) {
    // N.B. nothing may unwind into the SCM; the stop request stands.
  }
  return NO_ERROR;
}

std::filesystem::path logs_directory() {
  return data_directory() / L"logs";
}

/// The service's log: a rotating file under %ProgramData%\DiscArbiter\logs
/// (everything) and the Event Log (warnings and errors), both written by the
/// asynchronous logger's worker (logging.hpp).
void configure_service_logging(const Config& config, spdlog::sink_ptr event_log) {
  auto file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
      (logs_directory() / L"discarbiterd.log").string(), kLogFileBytes, kLogFiles);
  event_log->set_level(spdlog::level::warn);
  start_async_logging({file, std::move(event_log)}, {config.log_level, config.log_queue});
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
}

/// The data directory and its logs\ folder, created protected or checked;
/// then the configuration, read only from a file the service may trust.
Result<Config> prepare_to_start() {
  if (auto prepared = prepare_data_directory(); !prepared)
    return prepared.error();
  return (*g_service.load_config)();
}

void WINAPI service_main(DWORD argc, wchar_t** argv) {
  g_service.handle =
      ::RegisterServiceCtrlHandlerExW(service_name().c_str(), control_handler, nullptr);
  if (!g_service.handle)
    return;  // the SCM gave us no way to report; nothing else can be done
  g_service.report(SERVICE_START_PENDING, kStartWaitHintMs);
  try {
    // N.B. a logger of its own, synchronous, so start, stop and a refused
    // start reach the Event Log at info even before the log file exists.
    const auto event_log =
        std::make_shared<spdlog::sinks::win_eventlog_sink_mt>(std::string(kServiceName));
    const auto events = std::make_shared<spdlog::logger>("eventlog", event_log);
    events->set_level(spdlog::level::info);
    auto config = prepare_to_start();
    if (!config) {
      const bool untrusted = config.error().code == errc::access_denied;
      g_service.exit_code = untrusted ? kUntrustedDataExitCode : 2;
      events->error("DiscArbiter cannot start: {}", config.error().message);
      std::fprintf(stderr, "discarbiterd: cannot start: %s\n", config.error().message.c_str());
      g_service.report(SERVICE_STOPPED);
      return;
    }
    configure_service_logging(*config, event_log);
    if (argc > 1) {
      // N.B. argv[0] is the service name; the configuration comes from the
      // binPath's arguments and the config file.
      std::string ignored;
      for (DWORD i = 1; i < argc; ++i)
        ignored += (ignored.empty() ? "" : " ") + win32::to_utf8(argv[i]);
      spdlog::warn(
          "start parameters ignored ({}): set options in the service's binPath or "
          "its config file",
          ignored);
    }
    RunHooks hooks;
    hooks.on_ready = [&](RequestStop request_stop) {
      std::lock_guard lock(g_service.mutex);
      g_service.report_locked(SERVICE_RUNNING, 0);
      events->info("DiscArbiter {} started (pid {})", kVersion, ::GetCurrentProcessId());
      g_service.request_stop = std::move(request_stop);
      if (!g_service.pending_stop.empty())
        g_service.request_stop(g_service.pending_stop);
    };
    hooks.on_stopping = [](const std::string&) {
      // N.B. for stops from elsewhere (a fatal error); the control handler
      // has already said STOP_PENDING for the SCM's own.
      std::lock_guard lock(g_service.mutex);
      if (g_service.status.dwCurrentState != SERVICE_STOP_PENDING)
        g_service.report_locked(SERVICE_STOP_PENDING, kStopWaitHintMs);
    };
    g_service.exit_code = run_service(*config, hooks);
    {
      std::lock_guard lock(g_service.mutex);
      g_service.request_stop = nullptr;  // N.B. it refers to run_service's frame
    }
    if (g_service.exit_code == 0)
      events->info("DiscArbiter stopped; every lock was released");
    else
      events->error("DiscArbiter stopped with exit code {} (see the log under {})",
                    g_service.exit_code, logs_directory().string());
  } catch (const std::exception& e) {
    g_service.exit_code = 1;
    try {
      spdlog::critical("fatal: {}", e.what());
    } catch (...) {
    }
  } catch (...) {
    g_service.exit_code = 1;
  }
  g_service.report(SERVICE_STOPPED);
}

std::wstring quote_argument(const std::wstring& arg) {
  if (!arg.empty() && arg.find_first_of(L" \t\"") == std::wstring::npos)
    return arg;
  // N.B. the CommandLineToArgvW rules: backslashes before a quote double.
  std::wstring out = L"\"";
  std::size_t backslashes = 0;
  for (const wchar_t c : arg) {
    if (c == L'\\') {
      ++backslashes;
    } else {
      out.append(c == L'"' ? backslashes * 2 + 1 : backslashes, L'\\');
      backslashes = 0;
    }
    out.push_back(c);
  }
  out.append(backslashes * 2, L'\\');
  out.push_back(L'"');
  return out;
}

Result<std::wstring> own_executable() {
  std::array<wchar_t, 32768> path{};
  const DWORD n = ::GetModuleFileNameW(nullptr, path.data(), static_cast<DWORD>(path.size()));
  if (n == 0 || n >= path.size())
    return Error{errc::fail, describe("GetModuleFileNameW", ::GetLastError())};
  return std::wstring(path.data(), n);
}

Error scm_error(std::string_view step, DWORD error) {
  if (error == ERROR_ACCESS_DENIED) {
    return Error{errc::access_denied,
                 describe(step, error) + "; run it from an elevated (administrator) prompt"};
  }
  return Error{errc::fail, describe(step, error)};
}

/// Registers "DiscArbiter" as an Event Log source whose messages are our own
/// message table (event id 1000: the text as logged).
void register_event_source(const std::wstring& exe) {
  HKEY raw = nullptr;
  if (::RegCreateKeyExW(HKEY_LOCAL_MACHINE, kEventSourceKey, 0, nullptr, 0, KEY_SET_VALUE, nullptr,
                        &raw, nullptr) != ERROR_SUCCESS) {
    spdlog::warn("cannot register the event source; Event Viewer will show raw text");
    return;
  }
  const win32::unique_hkey key(raw);
  const DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE;
  ::RegSetValueExW(key.get(), L"EventMessageFile", 0, REG_SZ,
                   reinterpret_cast<const BYTE*>(exe.c_str()),
                   static_cast<DWORD>((exe.size() + 1) * sizeof(wchar_t)));
  ::RegSetValueExW(key.get(), L"TypesSupported", 0, REG_DWORD,
                   reinterpret_cast<const BYTE*>(&types), sizeof types);
}

}  // namespace

int run_as_system_service(const ConfigLoader& load_config) {
  g_service.load_config = &load_config;
  std::wstring name = service_name();
  const std::array<SERVICE_TABLE_ENTRYW, 2> table = {
      {{name.data(), service_main}, {nullptr, nullptr}}};
  if (!::StartServiceCtrlDispatcherW(table.data())) {
    const DWORD error = ::GetLastError();
    if (error == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
      std::fprintf(stderr,
                   "discarbiterd: not started by the service control manager.\n"
                   "  In a console: discarbiterd run [--simulate N]\n"
                   "  As a service: discarbiterd install, then sc start DiscArbiter\n");
      return 2;
    }
    std::fprintf(stderr, "discarbiterd: %s\n",
                 describe("StartServiceCtrlDispatcherW", error).c_str());
    return 1;
  }
  return g_service.exit_code;
}

Result<Done> install_system_service(const InstallOptions& options) {
  auto exe = own_executable();
  if (!exe)
    return exe.error();
  std::wstring command_line = quote_argument(*exe);
  for (const auto& arg : options.arguments)
    command_line += L" " + quote_argument(win32::to_wide(arg));

  win32::unique_schandle scm(
      ::OpenSCManagerW(nullptr, nullptr, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE));
  if (!scm)
    return scm_error("OpenSCManagerW", ::GetLastError());
  // N.B. after the SCM let us in (an administrator): a folder created by
  // an ordinary user would be theirs, and the service would refuse it.
  if (auto prepared = prepare_data_directory(); !prepared)
    return prepared;
  const std::wstring display = win32::to_wide(kServiceDisplayName);
  // N.B. a null account is LocalSystem (`sc.exe create … obj= LocalSystem`).
  win32::unique_schandle service(::CreateServiceW(
      scm.get(), service_name().c_str(), display.c_str(),
      SERVICE_CHANGE_CONFIG | SERVICE_QUERY_STATUS, SERVICE_WIN32_OWN_PROCESS,
      options.start_automatically ? SERVICE_AUTO_START : SERVICE_DEMAND_START, SERVICE_ERROR_NORMAL,
      command_line.c_str(), nullptr, nullptr, nullptr, nullptr, nullptr));
  if (!service) {
    const DWORD error = ::GetLastError();
    if (error == ERROR_SERVICE_EXISTS) {
      return Error{errc::fail,
                   "the DiscArbiter service is already installed; `discarbiterd uninstall` first"};
    }
    return scm_error("CreateServiceW", error);
  }

  std::wstring description = win32::to_wide(kServiceDescription);
  SERVICE_DESCRIPTIONW describe_service{description.data()};
  if (!::ChangeServiceConfig2W(service.get(), SERVICE_CONFIG_DESCRIPTION, &describe_service))
    return scm_error("ChangeServiceConfig2W(DESCRIPTION)", ::GetLastError());

  // Recovery: restart after 5 s, 30 s, 60 s; the count resets after a day.
  std::array<SC_ACTION, kRestartDelaysMs.size()> actions{};
  for (std::size_t i = 0; i < actions.size(); ++i)
    actions[i] = {static_cast<SC_ACTION_TYPE>(kRestartDelaysMs[i].first),
                  kRestartDelaysMs[i].second};
  SERVICE_FAILURE_ACTIONSW failure{kFailureResetSeconds, nullptr, nullptr,
                                   static_cast<DWORD>(actions.size()), actions.data()};
  if (!::ChangeServiceConfig2W(service.get(), SERVICE_CONFIG_FAILURE_ACTIONS, &failure))
    return scm_error("ChangeServiceConfig2W(FAILURE_ACTIONS)", ::GetLastError());
  // N.B. also when the service stops itself with an error, not only on a crash.
  SERVICE_FAILURE_ACTIONS_FLAG on_error_exit{TRUE};
  if (!::ChangeServiceConfig2W(service.get(), SERVICE_CONFIG_FAILURE_ACTIONS_FLAG, &on_error_exit))
    spdlog::warn("{}", describe("ChangeServiceConfig2W(FAILURE_ACTIONS_FLAG)", ::GetLastError()));
  SERVICE_PRESHUTDOWN_INFO preshutdown{kPreshutdownTimeoutMs};
  if (!::ChangeServiceConfig2W(service.get(), SERVICE_CONFIG_PRESHUTDOWN_INFO, &preshutdown))
    spdlog::warn("{}", describe("ChangeServiceConfig2W(PRESHUTDOWN_INFO)", ::GetLastError()));
  register_event_source(*exe);
  return Done{};
}

Result<Done> uninstall_system_service() {
  win32::unique_schandle scm(::OpenSCManagerW(nullptr, nullptr, SC_MANAGER_CONNECT));
  if (!scm)
    return scm_error("OpenSCManagerW", ::GetLastError());
  win32::unique_schandle service(::OpenServiceW(scm.get(), service_name().c_str(),
                                                SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE));
  if (!service) {
    const DWORD error = ::GetLastError();
    if (error == ERROR_SERVICE_DOES_NOT_EXIST)
      return Error{errc::fail, "the DiscArbiter service is not installed"};
    return scm_error("OpenServiceW", error);
  }
  SERVICE_STATUS status{};
  if (::QueryServiceStatus(service.get(), &status) && status.dwCurrentState != SERVICE_STOPPED) {
    // Stop first, so every lock is released before the service goes away.
    if (status.dwCurrentState != SERVICE_STOP_PENDING &&
        !::ControlService(service.get(), SERVICE_CONTROL_STOP, &status))
      return scm_error("ControlService(STOP)", ::GetLastError());
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kStopWaitHintMs * 2);
    while (::QueryServiceStatus(service.get(), &status) &&
           status.dwCurrentState != SERVICE_STOPPED) {
      if (std::chrono::steady_clock::now() > deadline)
        return Error{errc::fail, "the DiscArbiter service did not stop within 30 s; not removed"};
      ::Sleep(250);  // polls as sc.exe does; a CLI can afford it
    }
  }
  if (!::DeleteService(service.get()))
    return scm_error("DeleteService", ::GetLastError());
  ::RegDeleteKeyW(HKEY_LOCAL_MACHINE, kEventSourceKey);
  return Done{};
}

Result<Done> prepare_data_directory() {
  for (const auto& dir : {data_directory(), logs_directory()}) {
    if (auto trusted = create_trusted_directory(dir); !trusted)
      return trusted;
  }
  return Done{};
}

Result<Done> check_config_file(const std::string& path) {
  const std::filesystem::path file(win32::to_wide(path));
  if (auto folder = check_trusted_path(std::filesystem::absolute(file).parent_path()); !folder)
    return folder;
  return check_trusted_path(file);
}

std::string default_config_path() {
  return (data_directory() / L"discarbiter.json").string();
}

}  // namespace discarbiter::host
