// The visitor of std::visit over several lambdas, one per alternative.
#pragma once

namespace discarbiter::core {

template <typename... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <typename... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

}  // namespace discarbiter::core
