// Linux recorders: sr block devices of SCSI type 5 and their sg twins, found
// in sysfs; each opened O_RDWR | O_NONBLOCK | O_EXCL and flock(LOCK_EX)'ed
// so mounts, udev's helpers and other burners stay away while the service
// runs; commands go through SG_IO.
#include <fcntl.h>
#include <scsi/sg.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <span>

#include <fmt/format.h>

#include "discarbiter/posix/error.hpp"
#include "discarbiter/posix/unique_fd.hpp"
#include "drives/recorder.hpp"
#include "drives/sgio_outcome.hpp"

namespace discarbiter::drives {
namespace {

using posix::unique_fd;

namespace fs = std::filesystem;

constexpr std::size_t kSenseBuffer = 64;  // SG_IO writes up to this many sense bytes
constexpr std::uint32_t kFallbackMaxTransfer = 64 * 1024;

std::optional<std::string> read_first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line))
    return std::nullopt;
  return line;
}

/// "sr3" -> 3
std::optional<unsigned> number_after(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix) || name.size() == prefix.size())
    return std::nullopt;
  unsigned n = 0;
  for (char c : name.substr(prefix.size())) {
    if (c < '0' || c > '9')
      return std::nullopt;
    n = n * 10 + static_cast<unsigned>(c - '0');
  }
  return n;
}

/// The recorder behind block device srN, when sysfs says it is type 5.
std::optional<RecorderInfo> recorder_for_block(const std::string& sr) {
  const auto n = number_after(sr, "sr");
  if (!n)
    return std::nullopt;
  const fs::path device = fs::path("/sys/class/block") / sr / "device";
  if (read_first_line(device / "type") != std::to_string(core::kPeripheralTypeMmc))
    return std::nullopt;
  RecorderInfo info{fmt::format("cdrom{}", *n), "/dev/" + sr, {}};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(device / "scsi_generic", ec)) {
    info.twin = "/dev/" + entry.path().filename().string();
  }
  return info;
}

bool is_missing(std::error_code e) {
  return e == std::errc::no_such_file_or_directory || e == std::errc::no_such_device_or_address ||
         e == std::errc::no_such_device;
}

/// What open() failing with e means for an operator.
Error open_failure(std::error_code e, const std::string& path) {
  if (is_missing(e))
    return Error{errc::dev_not_exist, fmt::format("{} does not exist", path)};
  if (e == std::errc::device_or_resource_busy) {
    return Error{errc::fail, fmt::format("{} is in use: mounted, or opened exclusively by another "
                                         "program",
                                         path)};
  }
  if (e == std::errc::permission_denied || e == std::errc::operation_not_permitted) {
    return Error{errc::fail,
                 fmt::format("{}: permission denied (the service must run as root)", path)};
  }
  return Error{errc::fail, posix::describe(fmt::format("cannot open {}", path), e)};
}

/// Opens one node for the service alone: O_EXCL, then flock(LOCK_EX).
Result<unique_fd> open_exclusive(const std::string& path) {
  unique_fd fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_EXCL | O_CLOEXEC));
  if (!fd)
    return open_failure(posix::last_error(), path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    const auto e = posix::last_error();
    return Error{errc::fail, e == std::errc::operation_would_block
                                 ? fmt::format("{} is flock()ed by another program", path)
                                 : posix::describe(fmt::format("flock({})", path), e)};
  }
  return fd;
}

std::uint32_t max_transfer_of(const std::string& block_path) {
  const auto name = fs::path(block_path).filename().string();
  const auto kb = read_first_line(fs::path("/sys/class/block") / name / "queue/max_sectors_kb");
  if (!kb)
    return kFallbackMaxTransfer;
  try {
    return static_cast<std::uint32_t>(std::min<unsigned long>(std::stoul(*kb) * 1024, 1u << 30));
  } catch (const std::exception&) {
    return kFallbackMaxTransfer;
  }
}

class SgioDevice final : public ScsiDevice {
 public:
  SgioDevice(RecorderInfo info, unique_fd primary, unique_fd twin)
      : info_(std::move(info)), primary_(std::move(primary)), twin_(std::move(twin)) {
    description_.id = info_.id;
    description_.path = info_.path;
    description_.backend = "sgio";
    description_.max_transfer_bytes = max_transfer_of(info_.path);
    description_.os_lock = core::OsLock::exclusive_open;
  }

  Result<Done> read_inquiry(std::chrono::seconds timeout) {
    return read_identity(*this, description_, timeout);
  }

  DriveDescription describe() override { return description_; }

  ScsiResult execute(const ScsiCommand& command) override {
    // N.B. data-out is handed to the kernel as it is, not copied: with
    // SG_DXFER_TO_DEV the kernel only reads it.
    proto::Bytes data_in(command.direction == core::Direction::in ? command.data_in_len : 0);
    const std::span<std::uint8_t> data =
        command.direction == core::Direction::out
            ? std::span(const_cast<std::uint8_t*>(command.data_out.data()), command.data_out.size())
            : std::span(data_in);
    proto::Bytes cdb = command.cdb;
    std::uint8_t sense[kSenseBuffer] = {};
    sg_io_hdr_t io{};
    io.interface_id = 'S';
    io.dxfer_direction = command.direction == core::Direction::in    ? SG_DXFER_FROM_DEV
                         : command.direction == core::Direction::out ? SG_DXFER_TO_DEV
                                                                     : SG_DXFER_NONE;
    io.cmd_len = static_cast<unsigned char>(cdb.size());
    io.cmdp = cdb.data();
    io.mx_sb_len = sizeof sense;
    io.sbp = sense;
    io.dxfer_len = static_cast<unsigned>(data.size());
    io.dxferp = data.empty() ? nullptr : data.data();
    io.timeout = static_cast<unsigned>(
        std::chrono::duration_cast<std::chrono::milliseconds>(command.timeout).count());
    SgIoOutcome o;
    if (::ioctl(command_fd(), SG_IO, &io) != 0) {
      o.ioctl_error = posix::last_error();
    } else {
      o.status = io.status;
      o.host_status = io.host_status;
      o.driver_status = io.driver_status;
      o.duration_ms = io.duration;
      o.sense.assign(sense, sense + std::min<std::size_t>(io.sb_len_wr, sizeof sense));
      if (command.direction == core::Direction::in) {
        const auto resid =
            static_cast<std::size_t>(std::clamp(io.resid, 0, static_cast<int>(data.size())));
        data_in.resize(data_in.size() - resid);
        o.data_in = std::move(data_in);
      }
    }
    return interpret_sg_io(o, command.timeout);
  }

  // N.B. on Linux the exclusive open is the OS lock; it is held for as long
  // as the service runs (DESIGN.md "Semantics").
  Result<Done> lock_exclusive(const std::string&, bool) override { return Done{}; }
  Result<Done> unlock_exclusive() override { return Done{}; }
  // N.B. SG_IO cannot be interrupted; it returns by its own timeout.
  void cancel() override {}

 private:
  // N.B. commands go through the sg twin when there is one: its buffer
  // handling is the one burners rely on; the sr node otherwise.
  int command_fd() const { return twin_ ? twin_.get() : primary_.get(); }

  RecorderInfo info_;
  unique_fd primary_;
  unique_fd twin_;
  DriveDescription description_;
};

}  // namespace

Discovery find_recorders() {
  std::vector<std::pair<unsigned, RecorderInfo>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/sys/class/block", ec)) {
    const auto name = entry.path().filename().string();
    if (auto info = recorder_for_block(name)) {
      found.emplace_back(*number_after(name, "sr"), std::move(*info));
    }
  }
  std::ranges::sort(found, {}, &std::pair<unsigned, RecorderInfo>::first);
  Discovery out{{}, "sysfs", {}};
  for (auto& [n, info] : found)
    out.recorders.push_back(std::move(info));
  return out;
}

Result<RecorderInfo> recorder_at(const std::string& path) {
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec)
    return Error{errc::dev_not_exist, fmt::format("--drive {}: {}", path, ec.message())};
  const std::string name = real.filename().string();
  if (number_after(name, "sr")) {
    if (auto info = recorder_for_block(name))
      return *info;
    return Error{errc::invalid_arg, fmt::format("--drive {}: {} is not an optical drive (sysfs "
                                                "type is not 5)",
                                                path, real.string())};
  }
  if (number_after(name, "sg")) {
    const fs::path device = fs::path("/sys/class/scsi_generic") / name / "device";
    for (const auto& entry : fs::directory_iterator(device / "block", ec)) {
      if (auto info = recorder_for_block(entry.path().filename().string()))
        return *info;
    }
    // An sg node without an sr twin (sr_mod not loaded): drive it through sg.
    if (read_first_line(device / "type") == std::to_string(core::kPeripheralTypeMmc)) {
      return RecorderInfo{name, real.string(), {}};
    }
    return Error{errc::invalid_arg,
                 fmt::format("--drive {}: {} is not an optical drive", path, real.string())};
  }
  return Error{errc::invalid_arg,
               fmt::format("--drive {}: expected a /dev/srN or /dev/sgN device, got {}", path,
                           real.string())};
}

Result<std::shared_ptr<ScsiDevice>> open_recorder(const RecorderInfo& recorder,
                                                  std::chrono::seconds inquiry_timeout) {
  auto primary = open_exclusive(recorder.path);
  if (!primary)
    return primary.error();
  unique_fd twin;
  if (!recorder.twin.empty()) {
    auto opened = open_exclusive(recorder.twin);
    if (!opened)
      return opened.error();
    twin = std::move(opened.value());
  }
  auto device = std::make_shared<SgioDevice>(recorder, std::move(primary.value()), std::move(twin));
  if (auto ok = device->read_inquiry(inquiry_timeout); !ok)
    return ok.error();
  return std::shared_ptr<ScsiDevice>(std::move(device));
}

}  // namespace discarbiter::drives
