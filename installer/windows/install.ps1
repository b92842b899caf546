<#
.SYNOPSIS
  Installs DiscArbiter as the Windows service "DiscArbiter" (LocalSystem).
.DESCRIPTION
  Copies discarbiterd.exe and discarb.exe to $InstallDir, creates
  %ProgramData%\DiscArbiter with its protected DACL (discarbiterd prepare-data),
  then runs the same sc.exe commands as README / docs/windows.md: create,
  description, failure actions, failure flag, start. Run from an elevated
  PowerShell.
.EXAMPLE
  .\install.ps1 -BinDir .\build\msvc -Start auto -Arguments "--simulate 2"
#>
[CmdletBinding()]
param(
  [string]$BinDir = $PSScriptRoot,
  [string]$InstallDir = (Join-Path $env:ProgramFiles 'DiscArbiter'),
  [ValidateSet('auto', 'demand')][string]$Start = 'auto',
  [string]$Arguments = ''
)
$ErrorActionPreference = 'Stop'

function Invoke-Sc {
  param([string[]]$ScArgs)
  & sc.exe @ScArgs
  if ($LASTEXITCODE -ne 0) { throw "sc.exe $($ScArgs -join ' ') failed with exit code $LASTEXITCODE" }
}

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  throw 'Run this script from an elevated (administrator) PowerShell.'
}
if (Get-Service -Name DiscArbiter -ErrorAction SilentlyContinue) {
  throw 'The DiscArbiter service is already installed; run uninstall.ps1 first.'
}

New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
foreach ($exe in 'discarbiterd.exe', 'discarb.exe') {
  $source = Get-ChildItem -Path $BinDir -Recurse -Filter $exe | Select-Object -First 1
  if (-not $source) { throw "$exe not found under $BinDir" }
  Copy-Item -Force $source.FullName (Join-Path $InstallDir $exe)
}

# %ProgramData%\DiscArbiter and logs\ with their protected DACL
# (D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)), exactly as the
# service and the MSI make them. A folder that exists and that someone other
# than SYSTEM or Administrators could change is refused, not repaired: remove
# it (after looking at what is in it) and run this again.
& (Join-Path $InstallDir 'discarbiterd.exe') prepare-data
if ($LASTEXITCODE -ne 0) { throw "discarbiterd prepare-data failed with exit code $LASTEXITCODE" }

$binPath = '"' + (Join-Path $InstallDir 'discarbiterd.exe') + '"'
if ($Arguments) { $binPath += " $Arguments" }
Invoke-Sc @('create', 'DiscArbiter', 'binPath=', $binPath, 'start=', $Start, 'obj=', 'LocalSystem',
            'DisplayName=', 'Disc Arbiter (optical drive access)')
Invoke-Sc @('description', 'DiscArbiter',
            'Arbitrates exclusive access to CD/DVD/BD recorders between burning applications.')
Invoke-Sc @('failure', 'DiscArbiter', 'reset=', '86400', 'actions=', 'restart/5000/restart/30000/restart/60000')
Invoke-Sc @('failureflag', 'DiscArbiter', '1')

# The Event Log source; discarbiterd.exe carries the message table.
$source = 'HKLM:\SYSTEM\CurrentControlSet\Services\EventLog\Application\DiscArbiter'
New-Item -Force -Path $source | Out-Null
New-ItemProperty -Force -Path $source -Name EventMessageFile -PropertyType String `
  -Value (Join-Path $InstallDir 'discarbiterd.exe') | Out-Null
New-ItemProperty -Force -Path $source -Name TypesSupported -PropertyType DWord -Value 7 | Out-Null

Invoke-Sc @('start', 'DiscArbiter')
& (Join-Path $InstallDir 'discarb.exe') status
