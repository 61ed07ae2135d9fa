# A flake-parts module (https://flake.parts) exposing nixcrate's outputs:
#
#   imports = [ ./nix/nixcrate/flake-module.nix ];
#
# It needs the flake inputs `crane` and, when the workspace pins a toolchain, `rust-overlay`.
# Packages and checks keep their names (`api`, `deploy-lambda-<bin>`, `clippy-<member>`...);
# the dev shell is `devShells.nixcrate`, so that yours can stay `default` (give yours
# `inputsFrom = [ config.devShells.nixcrate ];`).
# `packages.default` and `apps.default` are defaults (lib.mkDefault): yours, if you set them, win.
{ inputs, lib, ... }:
{
  perSystem =
    { pkgs, system, ... }:
    let
      workspace = import ./. {
        inherit pkgs;
        inherit (inputs) crane;
        rust-overlay = inputs.rust-overlay or null;
        nixcrate = inputs.nixcrate.packages.${system}.default or null;
      };
      withDefault =
        attrs: lib.mapAttrs (name: value: if name == "default" then lib.mkDefault value else value) attrs;
    in
    {
      packages = withDefault workspace.packages;
      apps = withDefault workspace.apps;
      inherit (workspace) checks;
      devShells.nixcrate = workspace.devShell;
    };
}
