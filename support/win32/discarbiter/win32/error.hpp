// One vocabulary for Win32 failures: the step that failed, the error number
// and the system's words for it.
#pragma once

#include <windows.h>

#include <string>
#include <string_view>
#include <system_error>

#include "discarbiter/win32/wide.hpp"

namespace discarbiter::win32 {

/// The system's message for a Win32 error, without the trailing newline.
inline std::string error_text(DWORD error) {
  wchar_t* text = nullptr;
  const DWORD n = ::FormatMessageW(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, error, 0, reinterpret_cast<wchar_t*>(&text), 0, nullptr);
  std::wstring message = n && text ? std::wstring(text, n) : std::wstring();
  if (text)
    ::LocalFree(text);
  while (!message.empty() && (message.back() == L'\n' || message.back() == L'\r' ||
                              message.back() == L' ' || message.back() == L'.'))
    message.pop_back();
  return message.empty() ? "unknown error" : to_utf8(message);
}

/// "step: message (error N)", for logs and error replies.
inline std::string describe(std::string_view step, DWORD error) {
  return std::string(step) + ": " + error_text(error) + " (error " + std::to_string(error) + ")";
}

inline std::error_code make_error(DWORD error) {
  return {static_cast<int>(error), std::system_category()};
}

/// Throws std::system_error naming the step, with the current GetLastError().
[[noreturn]] inline void throw_last_error(std::string_view step) {
  const DWORD error = ::GetLastError();
  throw std::system_error(make_error(error), describe(step, error));
}

}  // namespace discarbiter::win32
