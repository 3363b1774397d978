// Error handling for the whole public API: a Status (code + message a person can act on) and
// Result<T>, which is Boost's own boost::system::result with a Status as its error.
#pragma once

#include <boost/system/result.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "bitfusion/export.h"

namespace bitfusion {

/// What went wrong, coarsely; the message says precisely what and what to do about it.
enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument,     ///< the caller passed something malformed; fix the input
  kNotFound,            ///< a named thing (file, image, machine, device) does not exist
  kAlreadyExists,       ///< creating something that is already there
  kPermissionDenied,    ///< the OS or a service refused access
  kFailedPrecondition,  ///< the system is not in a state where the call can work
  kResourceExhausted,   ///< no free device, quota reached, queue full
  kUnavailable,         ///< a service cannot be reached right now; retrying may help
  kDeadlineExceeded,    ///< the deadline passed before the call finished
  kCancelled,           ///< the caller (or a signal) asked to stop
  kIOError,             ///< reading or writing a file or socket failed
  kUnimplemented,       ///< this backend cannot do that at all
  kInternal,            ///< a bug in bitfusion; please report it
};

/// Stable lower-case name of a code, e.g. "invalid_argument".
BITFUSION_EXPORT std::string_view StatusCodeName(StatusCode code);

/// Success, or a code with a message. Messages never contain secrets: they are redacted when the
/// Status is made (see log.h, Redact).
class [[nodiscard]] BITFUSION_EXPORT Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string_view message);

  static Status OK() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// "invalid_argument: message", or "ok".
  std::string ToString() const;

  /// The same status with "context: " in front of its message; OK stays OK.
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

BITFUSION_EXPORT Status InvalidArgumentError(std::string_view message);
BITFUSION_EXPORT Status NotFoundError(std::string_view message);
BITFUSION_EXPORT Status AlreadyExistsError(std::string_view message);
BITFUSION_EXPORT Status PermissionDeniedError(std::string_view message);
BITFUSION_EXPORT Status FailedPreconditionError(std::string_view message);
BITFUSION_EXPORT Status ResourceExhaustedError(std::string_view message);
BITFUSION_EXPORT Status UnavailableError(std::string_view message);
BITFUSION_EXPORT Status DeadlineExceededError(std::string_view message);
BITFUSION_EXPORT Status CancelledError(std::string_view message);
BITFUSION_EXPORT Status IOError(std::string_view message);
BITFUSION_EXPORT Status UnimplementedError(std::string_view message);
BITFUSION_EXPORT Status InternalError(std::string_view message);

/// A Status made from errno after a failed system call: "what: strerror(errno)", with the code
/// chosen from errno (ENOENT -> kNotFound, EACCES -> kPermissionDenied, ...).
BITFUSION_EXPORT Status ErrnoError(int errnum, std::string_view what);

/// Thrown only by Result<T>::value() on an error, for callers that prefer exceptions.
class BITFUSION_EXPORT StatusError : public std::runtime_error {
 public:
  explicit StatusError(Status status);
  const Status& status() const { return status_; }

 private:
  Status status_;
};

/// Found by boost::system::result through ADL when value() is called on an error.
[[noreturn]] BITFUSION_EXPORT void throw_exception_from_error(const Status& status,
                                                              const boost::source_location& loc);

/// A value or a Status. This is boost::system::result<T, Status>, marked [[nodiscard]].
template <class T>
class [[nodiscard]] Result : public boost::system::result<T, Status> {
  using Base = boost::system::result<T, Status>;

 public:
  using Base::Base;
  Result(const Base& base) : Base(base) {}        // NOLINT(google-explicit-constructor)
  Result(Base&& base) : Base(std::move(base)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return this->has_value(); }
  /// The error, or OK when a value is held.
  Status status() const { return this->has_value() ? Status() : this->error(); }
};

namespace internal {
inline Status ToStatus(Status s) { return s; }
template <class T>
Status ToStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

}  // namespace bitfusion

#define BITFUSION_CONCAT_INNER(a, b) a##b
#define BITFUSION_CONCAT(a, b) BITFUSION_CONCAT_INNER(a, b)

/// Returns the Status of `expr` from the enclosing function when it is not OK.
#define BITFUSION_RETURN_IF_ERROR(expr)                                            \
  do {                                                                             \
    ::bitfusion::Status bitfusion_status_ = ::bitfusion::internal::ToStatus(expr); \
    if (!bitfusion_status_.ok()) return bitfusion_status_;                         \
  } while (0)

#define BITFUSION_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                    \
  if (!tmp.has_value()) return std::move(tmp).error();   \
  lhs = std::move(*tmp)

/// `lhs = value of rexpr`, or return its error from the enclosing function.
#define BITFUSION_ASSIGN_OR_RETURN(lhs, rexpr) \
  BITFUSION_ASSIGN_OR_RETURN_IMPL(BITFUSION_CONCAT(bitfusion_result_, __LINE__), lhs, rexpr)
