// Every decision the arbiter makes about a lock is recorded through this
// interface: the service logs it with spdlog, tests assert on it.
#pragma once

#include <cstdint>
#include <string>

namespace discarbiter::core {

enum class AuditKind {
  acquired,  // count 0 -> 1
  nested,    // count n -> n+1
  released,  // count n -> n-1 (n > 1)
  freed,     // count reached 0 and the drive is free again
  broken,    // an administrator ended the owner's lock (`break`)
  acquire_failed,
  waiting,
  wait_expired,
  wait_dropped,  // the waiting session ended
  session_ended,
  command_timeout,
  drive_error,
  drive_recovered,  // a TEST UNIT READY answered after a timeout
  drive_arrived,
  drive_removed,
};

std::string_view to_string(AuditKind kind);

struct AuditRecord {
  AuditKind kind;
  std::string drive;
  std::uint64_t session = 0;
  std::string client_name;
  std::uint32_t pid = 0;
  std::string user;
  std::uint32_t lock_count = 0;
  std::string detail;
  /// The session's user is an administrator (or, for a record about an
  /// owner whose session has ended, was one).
  bool administrator = false;
};

class AuditLog {
 public:
  virtual ~AuditLog() = default;
  virtual void record(const AuditRecord& record) = 0;
};

}  // namespace discarbiter::core
