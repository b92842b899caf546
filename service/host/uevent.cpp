#include "host/uevent.hpp"

namespace discarbiter::host {

std::optional<Uevent> parse_uevent(std::string_view message) {
  // The header "ACTION@DEVPATH" comes first; udev's re-broadcasts start
  // with "libudev" instead and are not ours to read.
  const auto header_end = message.find('\0');
  if (header_end == std::string_view::npos ||
      message.substr(0, header_end).find('@') == std::string_view::npos) {
    return std::nullopt;
  }
  Uevent e;
  std::size_t at = header_end + 1;
  while (at < message.size()) {
    auto end = message.find('\0', at);
    if (end == std::string_view::npos)
      end = message.size();
    const std::string_view field = message.substr(at, end - at);
    if (field.starts_with("ACTION="))
      e.action = field.substr(7);
    else if (field.starts_with("SUBSYSTEM="))
      e.subsystem = field.substr(10);
    else if (field.starts_with("DEVNAME="))
      e.devname = field.substr(8);
    at = end + 1;
  }
  if (e.action.empty() || e.subsystem.empty())
    return std::nullopt;
  // N.B. DEVNAME may carry a directory ("bus/usb/001/002"); ours never do.
  if (const auto slash = e.devname.rfind('/'); slash != std::string::npos)
    e.devname.erase(0, slash + 1);
  return e;
}

}  // namespace discarbiter::host
