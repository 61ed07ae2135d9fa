# A flake-parts module (https://flake.parts) exposing nixcrate's outputs:
#
#   imports = [ ./nix/nixcrate/flake-module.nix ];
#
# It needs the flake inputs `crane` and, when the workspace pins a toolchain, `rust-overlay`.
# Packages and checks keep their names (`api`, `deploy-lambda-<bin>`, `clippy-<member>`...);
# the dev shell is `devShells.nixcrate`, so that yours can stay `default`.
{ inputs, ... }:
{
  perSystem =
    { pkgs, ... }:
    let
      nixcrate = import ./. {
        inherit pkgs;
        inherit (inputs) crane;
        rust-overlay = inputs.rust-overlay or null;
      };
    in
    {
      inherit (nixcrate) packages checks;
      devShells.nixcrate = nixcrate.devShell;
    };
}
