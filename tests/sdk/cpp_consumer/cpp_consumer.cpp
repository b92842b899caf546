// An out-of-tree C++ program against the installed SDK (tests/sdk): connect,
// list the drives, acquire with a guard, INQUIRY into its own buffer, the
// status, and a CHECK CONDITION as a result rather than an exception; against
// a live discarbiterd with simulated drives (DISCARBITER_ENDPOINT names it).
// Built against the shared library and, once, the static one.
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "discarbiter/client.hpp"
#include "discarbiter/proto/sense.hpp"

namespace {

int failures = 0;

void expect(bool ok, const std::string& step) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", step.c_str());
  if (!ok)
    ++failures;
}

}  // namespace

int main() {
  try {
    discarbiter::Client client({.client_name = "cpp_consumer"});
    std::printf("connected to %s, service %s\n", client.endpoint().c_str(),
                client.server().server_version.c_str());

    const auto drives = client.drives();
    expect(drives.size() == 2 && drives[0].id == "sim0", "drives(): sim0 and sim1");
    expect(client.max_transfer() >= 65536, "max_transfer() at least 64 KiB");
    {
      auto lock = client.acquire("sim0");
      expect(lock.lock_count() == 1, "acquire(): a guard, lock count 1");

      std::array<std::uint8_t, 36> inquiry{};
      const std::uint8_t cdb[] = {0x12, 0, 0, 0, 36, 0};
      const auto result = client.send_command_get_data_from_device("sim0", cdb, inquiry);
      expect(result.code == discarbiter::errc::ok && result.bytes_transferred == 36 &&
                 (inquiry[0] & 0x1F) == 0x05 && std::memcmp(&inquiry[8], "DISCARB ", 8) == 0,
             "INQUIRY into the caller's buffer");

      const std::uint8_t beyond[] = {0x28, 0, 0x7F, 0xFF, 0xFF, 0, 0, 0, 1, 0};
      std::array<std::uint8_t, 2048> block{};
      const auto check = client.send_command_get_data_from_device("sim0", beyond, block);
      expect(check.code == discarbiter::errc::command_has_sense_data && check.scsi_status == 2,
             "READ(10) beyond the medium: " + discarbiter::proto::explain_sense(check.sense));

      const auto status = client.status();
      bool held = false;
      for (const auto& d : status.drives)
        held = held || (d.id == "sim0" && d.owner && d.owner->client_name == "cpp_consumer");
      expect(held, "status(): sim0 held by this client");
    }  // the guard releases
    expect(!client.exclusive_access_owner("sim0"), "the guard released sim0");

    try {
      client.acquire_exclusive_access("no-such-drive");
      expect(false, "acquire of an unknown drive throws");
    } catch (const discarbiter::ServiceError& e) {
      expect(e.code_value() == discarbiter::errc::dev_not_exist,
             "acquire of an unknown drive: " + e.name() + ": " + e.detail());
    }
  } catch (const discarbiter::ServiceError& e) {
    std::printf("FAIL %s: %s\n", e.name().c_str(), e.what());
    return 1;
  }
  std::printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
