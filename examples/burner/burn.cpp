// discarbiter-burn: the sample burner (docs/client.md "The sample burner").
// Writes an image to a medium WRITE(10) may overwrite in place (DVD+RW,
// DVD-RW in restricted overwrite, DVD-RAM, BD-RE, CD-RW) through the
// DiscArbiter service, then reads it back and compares:
//
//   acquire ─► GET CONFIGURATION (profile) ─► READ CAPACITY (fits?) ─►
//   WRITE(10) × ⌈size / chunk⌉ ─► SYNCHRONIZE CACHE ─► READ(10) × … (verify) ─► release
//
//   discarbiter-burn [--endpoint E] [--name NAME] [--wait S] [--no-verify] DRIVE IMAGE
//
// Exit codes, as discarb's: 0 written (and verified); 1 a failure (the
// step, the error's name and message are printed); 2 usage; 3 another
// client holds the drive (after --wait seconds).
//
// It uses only the installed SDK and the standard library, so it builds
// in-tree and against an installed prefix alike (CMakeLists.txt).
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <discarbiter/client.hpp>
#include <discarbiter/mmc.hpp>
#include <discarbiter/proto/mmc.hpp>

#include "terminal.hpp"

namespace {

namespace mmc = discarbiter::mmc;
namespace profiles = discarbiter::proto::mmc;
using discarbiter::Client;
using discarbiter::errc;
using discarbiter::ServiceError;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitLocked = 3;

constexpr std::uint32_t kBlock = profiles::kBlockSize;
// WRITE(10)'s transfer length is 16 bits of blocks.
constexpr std::uint32_t kMaxBlocksPerCommand = 0xFFFF;
constexpr double kMaxWaitSeconds = 86400;

constexpr std::string_view kUsage =
    "usage: discarbiter-burn [--endpoint E] [--name NAME] [--wait S] [--no-verify] DRIVE IMAGE\n"
    "  Writes IMAGE to the rewritable medium in DRIVE through the DiscArbiter service,\n"
    "  then reads it back and compares checksums.\n"
    "  --endpoint E  the service's endpoint (default: $DISCARBITER_ENDPOINT, else the\n"
    "                platform's)\n"
    "  --name NAME   the client name others see as the drive's owner (discarbiter-burn)\n"
    "  --wait S      seconds to wait for a drive another client holds (0: fail at once)\n"
    "  --no-verify   skip the read-back\n"
    "exit codes: 0 done, 1 failure, 2 usage, 3 the drive is held by another client\n";

struct Options {
  std::string endpoint;
  std::string name = "discarbiter-burn";
  double wait_s = 0;
  bool verify = true;
  std::string drive;
  std::filesystem::path image;
};

/// A failure of this program's own (not the service's): printed as is.
struct Refusal {
  std::string message;
};

/// The options, or a message naming the argument that is wrong.
std::optional<Options> parse_arguments(int argc, char** argv, std::string& error) {
  Options options;
  std::vector<std::string_view> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const auto value = [&]() -> std::optional<std::string_view> {
      if (i + 1 == argc) {
        error = std::string(arg) + " needs a value";
        return std::nullopt;
      }
      return argv[++i];
    };
    if (arg == "--endpoint" || arg == "--name") {
      const auto v = value();
      if (!v)
        return std::nullopt;
      (arg == "--endpoint" ? options.endpoint : options.name) = *v;
    } else if (arg == "--wait") {
      const auto v = value();
      if (!v)
        return std::nullopt;
      double seconds = -1;
      const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), seconds);
      if (ec != std::errc() || end != v->data() + v->size() || !std::isfinite(seconds) ||
          seconds < 0 || seconds > kMaxWaitSeconds) {
        error = "--wait: expected seconds from 0 to 86400, got '" + std::string(*v) + "'";
        return std::nullopt;
      }
      options.wait_s = seconds;
    } else if (arg == "--no-verify") {
      options.verify = false;
    } else if (arg.starts_with("-") && arg != "-") {
      error = "unknown option '" + std::string(arg) + "'";
      return std::nullopt;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) {
    error = "expected DRIVE and IMAGE, got " + std::to_string(positional.size()) + " arguments";
    return std::nullopt;
  }
  options.drive = positional[0];
  options.image = positional[1];
  return options;
}

std::string size_text(std::uint64_t bytes) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1024.0 * 1024.0)
      << " MiB";
  return out.str();
}

std::string rate_text(std::uint64_t bytes, double seconds) {
  std::ostringstream out;
  out << size_text(bytes) << " in " << std::fixed << std::setprecision(2) << seconds
      << " s: " << std::setprecision(1)
      << static_cast<double>(bytes) / (1024.0 * 1024.0) / std::max(seconds, 1e-9) << " MiB/s";
  return out.str();
}

std::string hex32(std::uint32_t value) {
  std::ostringstream out;
  out << "0x" << std::hex << std::setw(8) << std::setfill('0') << value;
  return out.str();
}

std::string profile_text(std::uint16_t profile) {
  const auto name = profiles::profile_name(profile);
  std::ostringstream out;
  if (!name.empty())
    out << name << ' ';
  out << "(profile 0x" << std::hex << std::uppercase << std::setw(4) << std::setfill('0') << profile
      << ')';
  return out.str();
}

/// CRC-32 (ISO-HDLC: zlib's, cksum -a crc32b's, 7-Zip's), fed chunk by
/// chunk: the image's while it is written, the disc's while it is read back.
/// Any tool can check the image's figure independently.
class Crc32 {
 public:
  void update(std::span<const std::uint8_t> bytes) {
    for (const std::uint8_t b : bytes)
      crc_ = kTable[(crc_ ^ b) & 0xFFU] ^ (crc_ >> 8);
  }
  std::uint32_t value() const { return crc_ ^ 0xFFFFFFFFU; }

 private:
  static constexpr std::array<std::uint32_t, 256> kTable = [] {
    std::array<std::uint32_t, 256> table{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k)
        c = (c & 1U) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return table;
  }();
  std::uint32_t crc_ = 0xFFFFFFFFU;
};

/// A progress bar redrawn in place on a terminal; nothing otherwise (a log
/// gets the summary line only).
class Progress {
 public:
  Progress(std::string_view verb, std::uint64_t total, bool terminal)
      : verb_(verb), total_(total), terminal_(terminal) {}

  void update(std::uint64_t done) {
    if (!terminal_)
      return;
    const auto percent = static_cast<int>(done * 100 / std::max<std::uint64_t>(total_, 1));
    if (percent == shown_)
      return;
    shown_ = percent;
    constexpr int kWidth = 40;
    const int filled = percent * kWidth / 100;
    std::cout << '\r' << verb_ << " [" << std::string(static_cast<std::size_t>(filled), '#')
              << std::string(static_cast<std::size_t>(kWidth - filled), '.') << "] " << std::setw(3)
              << percent << "% " << size_text(done) << std::flush;
  }

  /// Clears the bar, so the summary line replaces it.
  void finish() {
    if (terminal_ && shown_ >= 0)
      std::cout << '\r' << std::string(72, ' ') << '\r' << std::flush;
  }

 private:
  std::string verb_;
  std::uint64_t total_;
  bool terminal_;
  int shown_ = -1;
};

/// Reads exactly `into.size()` bytes of the image.
void read_image(std::ifstream& file, const std::filesystem::path& path, std::uint64_t offset,
                std::span<std::uint8_t> into) {
  // N.B. std::ifstream reads chars; the buffer holds bytes of the same size.
  file.read(reinterpret_cast<char*>(into.data()), static_cast<std::streamsize>(into.size()));
  if (file.gcount() != static_cast<std::streamsize>(into.size())) {
    throw Refusal{path.string() + ": cannot read " + std::to_string(into.size()) +
                  " bytes at offset " + std::to_string(offset) +
                  " (did the file change during the burn?)"};
  }
}

std::uint32_t blocks_of(std::uint64_t bytes) {
  return static_cast<std::uint32_t>((bytes + kBlock - 1) / kBlock);
}

struct Burn {
  /// `chunk`: the bytes of one WRITE(10) or READ(10), a multiple of blocks.
  Burn(Client& c, const Options& o, std::ifstream image, std::uint64_t size, std::uint32_t chunk)
      : client(c), options(o), image_bytes(size), file(std::move(image)), buffer(chunk) {}

  Client& client;
  const Options& options;
  std::uint64_t image_bytes;
  std::ifstream file;
  std::string step;  // what was being done, for the error message
  /// The WRITE(10) and READ(10) chunk: allocated once, reused for every
  /// command (the library sends from and reads into it directly).
  std::vector<std::uint8_t> buffer;
  std::uint32_t image_checksum = 0;

  /// Refuses a medium this program must not or cannot overwrite.
  void check_medium() {
    const std::string& drive = options.drive;
    step = "GET CONFIGURATION";
    const std::uint16_t profile = mmc::current_profile(client, drive);
    if (profile == profiles::kProfileNone)
      throw Refusal{"no medium in " + drive};
    if (!profiles::is_overwritable(profile)) {
      throw Refusal{drive + " holds a " + profile_text(profile) +
                    " medium, which WRITE(10) cannot overwrite in place; this sample writes "
                    "rewritable media only (DVD+RW, DVD-RW in restricted overwrite, DVD-RAM, "
                    "BD-RE, CD-RW)"};
    }
    step = "READ CAPACITY";
    const auto capacity = mmc::read_capacity(client, drive);
    if (capacity.block_length != kBlock) {
      throw Refusal{drive + " reports blocks of " + std::to_string(capacity.block_length) +
                    " bytes; this sample writes " + std::to_string(kBlock) + "-byte blocks"};
    }
    const std::uint64_t padded = std::uint64_t{blocks_of(image_bytes)} * kBlock;
    if (padded > capacity.bytes()) {
      throw Refusal{options.image.string() + " is " + size_text(image_bytes) + " (" +
                    std::to_string(image_bytes) + " bytes); the " + profile_text(profile) +
                    " medium in " + drive + " holds " + size_text(capacity.bytes()) + " (" +
                    std::to_string(capacity.bytes()) + " bytes)"};
    }
    std::cout << "burning " << options.image.string() << " (" << size_text(image_bytes) << ", "
              << blocks_of(image_bytes) << " blocks) to " << drive << ": " << profile_text(profile)
              << ", " << size_text(capacity.bytes()) << "; " << size_text(buffer.size())
              << " per WRITE(10)"
              // N.B. flushed: a watcher (the integration test) knows the writes begin.
              << std::endl;
  }

  /// Walks the image in chunks of the buffer's size: `each(lba, offset,
  /// chunk, n)` gets the buffer as whole blocks whose first `n` bytes are
  /// the image's at `offset` (the last chunk's tail is padding).
  template <typename Each>
  void for_each_chunk(std::string_view verb, bool terminal, Each each) {
    Progress progress(verb, image_bytes, terminal);
    std::uint32_t lba = 0;
    for (std::uint64_t done = 0; done < image_bytes;) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), image_bytes - done));
      each(lba, done, std::span<std::uint8_t>(buffer.data(), std::size_t{blocks_of(n)} * kBlock),
           n);
      lba += blocks_of(n);
      done += n;
      progress.update(done);
    }
    progress.finish();
  }

  /// WRITE(10) of the image, the last chunk padded with zeros to a whole
  /// block; then SYNCHRONIZE CACHE, inside the timing: a drive has not
  /// written what is still in its cache.
  void write(bool terminal) {
    Crc32 checksum;
    const auto start = std::chrono::steady_clock::now();
    for_each_chunk(
        "writing  ", terminal,
        [&](std::uint32_t lba, std::uint64_t offset, std::span<std::uint8_t> chunk, std::size_t n) {
          read_image(file, options.image, offset, chunk.first(n));
          std::fill(chunk.begin() + static_cast<std::ptrdiff_t>(n), chunk.end(), std::uint8_t{0});
          checksum.update(chunk.first(n));
          step = "WRITE(10) at LBA " + std::to_string(lba);
          mmc::write10(client, options.drive, lba, chunk);
        });
    step = "SYNCHRONIZE CACHE";
    mmc::synchronize_cache(client, options.drive);
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    image_checksum = checksum.value();
    std::cout << "wrote " << rate_text(image_bytes, took.count()) << std::endl;
  }

  /// READ(10) of what was written, chunk by chunk: the disc's checksum,
  /// and the first block that differs from the image. True if equal.
  bool verify(bool terminal) {
    Crc32 checksum;
    std::vector<std::uint8_t> expected(buffer.size());  // the image's bytes, reread
    std::optional<std::uint64_t> first_mismatch;        // LBA
    file.clear();
    file.seekg(0);
    const auto start = std::chrono::steady_clock::now();
    for_each_chunk(
        "verifying", terminal,
        [&](std::uint32_t lba, std::uint64_t offset, std::span<std::uint8_t> chunk, std::size_t n) {
          step = "READ(10) at LBA " + std::to_string(lba);
          mmc::read10(client, options.drive, lba, chunk);
          const auto read = chunk.first(n);
          checksum.update(read);
          read_image(file, options.image, offset, std::span(expected).first(n));
          const auto diff = std::mismatch(read.begin(), read.end(), expected.begin());
          if (!first_mismatch && diff.first != read.end())
            first_mismatch = lba + static_cast<std::uint64_t>(diff.first - read.begin()) / kBlock;
        });
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    const std::string checksums = "CRC-32 " + hex32(image_checksum) + " (image) " +
                                  (checksum.value() == image_checksum ? "=" : "!=") + " " +
                                  hex32(checksum.value()) + " (disc)";
    if (first_mismatch || checksum.value() != image_checksum) {
      std::cerr << "discarbiter-burn: verify FAILED: "
                << (first_mismatch ? "first mismatch at LBA " + std::to_string(*first_mismatch)
                                   : std::string("the image changed while it was read"))
                << "; " << checksums << std::endl;
      return false;
    }
    std::cout << "verified " << rate_text(image_bytes, took.count()) << "; " << checksums
              << std::endl;
    return true;
  }
};

int exit_code_for(errc code) {
  switch (code) {
    case errc::recorder_locked:
      return kExitLocked;
    case errc::recorder_client_name_is_not_valid:
      return kExitUsage;
    default:
      return kExitFailure;
  }
}

int run(const Options& options) {
  std::error_code size_error;
  const std::uint64_t image_bytes = std::filesystem::file_size(options.image, size_error);
  if (size_error) {
    std::cerr << "discarbiter-burn: " << options.image.string() << ": " << size_error.message()
              << std::endl;
    return kExitFailure;
  }
  if (image_bytes == 0) {
    std::cerr << "discarbiter-burn: " << options.image.string() << " is empty" << std::endl;
    return kExitFailure;
  }
  std::ifstream image(options.image, std::ios::binary);
  if (!image) {
    std::cerr << "discarbiter-burn: cannot open " << options.image.string() << std::endl;
    return kExitFailure;
  }
  std::string step = "connect";
  try {
    Client client({.endpoint = options.endpoint, .client_name = options.name});
    step = "acquire " + options.drive;
    auto lock = client.acquire(
        options.drive, {.wait = std::chrono::milliseconds(std::llround(options.wait_s * 1000))});

    step = "max_transfer";
    const std::uint32_t chunk =
        std::min(client.max_transfer(options.drive) / kBlock, kMaxBlocksPerCommand) * kBlock;
    if (chunk == 0) {
      std::cerr << "discarbiter-burn: " << options.drive << " takes less than one block per command"
                << std::endl;
      return kExitFailure;
    }
    Burn burn(client, options, std::move(image), image_bytes, chunk);
    const bool terminal = burner::stdout_is_terminal();
    try {
      burn.check_medium();
      burn.write(terminal);
      if (options.verify && !burn.verify(terminal))
        return kExitFailure;
    } catch (const ServiceError&) {
      step = burn.step;
      throw;
    } catch (const Refusal& refusal) {
      std::cerr << "discarbiter-burn: " << refusal.message << std::endl;
      return kExitFailure;
    }
    // N.B. released here rather than by the guard's destructor, which
    // cannot report a failure.
    step = "release " + options.drive;
    lock.release();
    std::cout << "released " << options.drive << std::endl;
    return kExitOk;
  } catch (const ServiceError& e) {
    // A CommandError's message is the command and its decoded sense.
    std::cerr << "discarbiter-burn: " << step << ": " << e.name() << ": " << e.detail()
              << std::endl;
    return exit_code_for(e.code_value());
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return kExitOk;
    }
  }
  std::string error;
  const auto options = parse_arguments(argc, argv, error);
  if (!options) {
    std::cerr << "discarbiter-burn: " << error << "\n" << kUsage;
    return kExitUsage;
  }
  return run(*options);
}
