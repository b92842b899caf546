<#
.SYNOPSIS
  Stops and removes the DiscArbiter service and its files.
.DESCRIPTION
  Stopping first lets the service release every lock (ALLOW MEDIUM REMOVAL
  and the driver's exclusive-access unlock) before it goes away. Run from an
  elevated PowerShell.
#>
[CmdletBinding()]
param([string]$InstallDir = (Join-Path $env:ProgramFiles 'DiscArbiter'))
$ErrorActionPreference = 'Stop'

$service = Get-Service -Name DiscArbiter -ErrorAction SilentlyContinue
if (-not $service) { throw 'The DiscArbiter service is not installed.' }
if ($service.Status -ne 'Stopped') {
  Stop-Service -Name DiscArbiter
  $service.WaitForStatus('Stopped', [TimeSpan]::FromSeconds(30))
}
& sc.exe delete DiscArbiter
if ($LASTEXITCODE -ne 0) { throw "sc.exe delete DiscArbiter failed with exit code $LASTEXITCODE" }
Remove-Item -Force -ErrorAction SilentlyContinue `
  'HKLM:\SYSTEM\CurrentControlSet\Services\EventLog\Application\DiscArbiter'
Remove-Item -Recurse -Force -ErrorAction SilentlyContinue $InstallDir
