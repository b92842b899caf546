#include <array>
#include <chrono>
#include <cstdint>
#include <iostream>

#include <discarbiter/client.hpp>

// Connect, take the drive (waiting up to 30 s for another app to finish),
// send INQUIRY into a buffer of ours, release.
int inquire(const std::string& drive) {
  try {
    discarbiter::ConnectOptions options;
    options.client_name = "MyBurner";  // endpoint: $DISCARBITER_ENDPOINT, else the platform's
    discarbiter::Client client(options);
    auto lock = client.acquire(drive, {.wait = std::chrono::seconds(30)});

    const std::uint8_t cdb[] = {0x12, 0, 0, 0, 36, 0};  // INQUIRY, 36 bytes
    std::array<std::uint8_t, 36> inquiry{};
    const auto result = client.send_command_get_data_from_device(drive, cdb, inquiry);
    std::cout << "INQUIRY returned " << result.bytes_transferred << " bytes\n";

    lock.release();  // or let ~ExclusiveAccess release it (it cannot report a failure)
    return 0;
  } catch (const discarbiter::ServiceError& e) {
    // E_IMAPI_RECORDER_LOCKED (0xC0AA0210): drive 'sim0' is held by 'OtherApp' …
    std::cerr << e.name() << " (0x" << std::hex << e.hresult() << "): " << e.detail() << "\n";
    return 1;
  }
}
