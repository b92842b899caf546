#include <chrono>
#include <functional>
#include <iostream>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <variant>

#include <discarbiter/client.hpp>

// One Client, two threads: this one burns, the other shows who holds what
// and prints the service's events. Every member function may be called from
// several threads at once; replies are matched to callers by request id.
void watch_while_burning(discarbiter::Client& client, const std::function<void()>& burn) {
  client.subscribe();
  // N.B. a jthread: its destructor stops and joins it, also when burn() throws.
  std::jthread ui([&](std::stop_token stop) noexcept {
    try {
      while (!stop.stop_requested()) {
        for (const auto& drive : client.status().drives)
          std::cout << drive.id << ": " << drive.state << ", " << drive.stats.commands
                    << " commands\n";
        if (auto owner = client.exclusive_access_owner("sim0"))
          std::cout << "sim0 held by " << owner->client_name << " (pid " << owner->pid << ")\n";
        // Events come only after subscribe(); next_event waits up to its timeout.
        while (auto event = client.next_event(std::chrono::milliseconds(500))) {
          std::visit(
              [](const auto& e) {
                using E = std::decay_t<decltype(e)>;
                if constexpr (std::is_same_v<E, discarbiter::proto::Released>)
                  std::cout << e.drive << " released by " << e.client_name << " (" << e.cause
                            << ")\n";
                else if constexpr (std::is_same_v<E, discarbiter::proto::UnknownEvent>)
                  std::cout << "event " << e.name << "\n";
                else
                  std::cout << "event " << E::kName << " on " << e.drive << "\n";
              },
              *event);
        }
      }
    } catch (const discarbiter::ServiceError& e) {  // e.g. DA_E_CONNECTION_LOST
      std::cerr << "status: " << e.name() << ": " << e.detail() << "\n";
    }
  });
  burn();  // e.g. write_stream(client, "sim0", image) of buffers.cpp
}
